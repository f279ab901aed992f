"""Faces: CenterFace on public-domain pictures, and "publish with faces blurred".

The pictures are scikit-image's public-domain samples: ``astronaut`` (Eileen
Collins, NASA) and ``camera`` (the cameraman) have one face each; ``coffee``,
``rocket`` and ``chelsea`` (a cat) have none. Boxes are checked within a
tolerance, never pixel for pixel.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image
from skimage import data
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Media
from monitor.analysis.faces import FaceDetector
from monitor.analysis.findings import Box, Context, ImageInput
from monitor.analysis.runner import Analyser
from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import AuditEvent, MediaItem, Post, PostStatus
from monitor.services.analysis import analyse_waiting, blur_faces
from monitor.services.audit import Action
from monitor.services.consent import record_consent
from monitor.services.media import pinned_file, pinned_name, store_image
from monitor.services.moderation import (
    FacesNeedConsent,
    decide,
    flag_reasons,
    load_cards,
)
from monitor.services.staging import stage_all_waiting
from tests.factories import make_post
from tests.fakes.server import FakeServer, Reply
from tests.web.auth_helpers import make_user

#: Where the astronaut's face is in the 512 x 512 picture (measured once, by eye and model).
ASTRONAUT_FACE = Box(181, 58, 270, 178)
TOLERANCE = 15


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    detector = FaceDetector()
    detector.load()
    return detector


def picture(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def jpeg(image: Image.Image, *, orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, exif=exif)
    return buffer.getvalue()


def close_to(box: Box, expected: Box, tolerance: float = TOLERANCE) -> bool:
    pairs = zip(
        (box.left, box.top, box.right, box.bottom),
        (expected.left, expected.top, expected.right, expected.bottom),
        strict=True,
    )
    return all(abs(a - b) <= tolerance for a, b in pairs)


def faces_in(detector: FaceDetector, image: Image.Image) -> list[Box]:
    item = ImageInput(image=image, position=1, media_id=1, post_id=1)
    return [box for finding in detector.analyse(item, Context()) for box in finding.boxes]


def test_one_face_is_found_where_it_is(detector: FaceDetector) -> None:
    item = ImageInput(image=picture("astronaut"), position=2, media_id=1, post_id=1)

    [finding] = detector.analyse(item, Context())

    assert finding.words == "1 face in image 2" and finding.blur
    [box] = finding.boxes
    assert close_to(box, ASTRONAUT_FACE)
    assert faces_in(detector, picture("camera")) != []


@pytest.mark.parametrize("name", ["coffee", "rocket", "chelsea"])
def test_pictures_without_people_have_no_faces(detector: FaceDetector, name: str) -> None:
    assert faces_in(detector, picture(name)) == []


def test_several_faces_are_counted(detector: FaceDetector) -> None:
    face = picture("astronaut")
    both = Image.new("RGB", (1024, 512), "white")
    both.paste(face, (0, 0))
    both.paste(face, (512, 0))
    item = ImageInput(image=both, position=1, media_id=1, post_id=1)

    [finding] = detector.analyse(item, Context())

    assert finding.words == "2 faces in image 1"
    shifted = Box(
        ASTRONAUT_FACE.left + 512,
        ASTRONAUT_FACE.top,
        ASTRONAUT_FACE.right + 512,
        ASTRONAUT_FACE.bottom,
    )
    assert sorted(finding.boxes, key=lambda b: b.left)[1] == next(
        b for b in finding.boxes if close_to(b, shifted)
    )


@pytest.mark.parametrize("size", [(1, 1), (3, 2000), (4000, 20), (2400, 1280)])
def test_tiny_thin_and_large_images_are_analysed_without_error(
    detector: FaceDetector, size: tuple[int, int]
) -> None:
    assert faces_in(detector, Image.new("RGB", size, (120, 100, 90))) == []


def test_a_face_in_an_exif_rotated_photo_is_boxed_on_the_upright_copy(
    detector: FaceDetector, tmp_path: Path
) -> None:
    # Stored sideways with "rotate 90 clockwise to view" (6): the camera's usual portrait.
    sideways = picture("astronaut").transpose(Image.Transpose.ROTATE_90)
    pinned = store_image(jpeg(sideways, orientation=6), tmp_path)
    stored = Image.open(pinned_file(tmp_path, pinned_name(pinned.digest, pinned.widths[-1])))

    [box] = faces_in(detector, stored.convert("RGB"))

    # The stored copy is upright, so the face is where it is in the original picture.
    assert close_to(box, ASTRONAUT_FACE)


# --- through the pipeline --------------------------------------------------------------


@pytest.fixture(scope="module")
def analyser() -> Iterator[Analyser]:
    with Analyser(targets={"faces": "monitor.analysis.faces:FaceDetector"}) as analyser:
        analyser.start()
        yield analyser


@pytest.fixture
def settings(configure: Callable[..., Settings], tmp_path: Path, engine: Engine) -> Settings:
    return configure(
        OUTBOUND_ALLOW_PRIVATE="true",
        MEDIA_DIR=str(tmp_path / "media"),
        IMAGE_ANALYSIS="true",
        DATABASE_URL=engine.url.render_as_string(hide_password=False),
    )


def _post_with(engine: Engine, fake_server: FakeServer, body: bytes) -> int:
    fake_server.route(
        "GET", "/face.jpg", lambda _request: Reply(200, body, {"Content-Type": "image/jpeg"})
    )
    media = (Media(kind="image", url=f"{fake_server.url}/face.jpg", alt="A person"),)
    with session_scope(engine) as session:
        return record_posts_one(session, media)


def record_posts_one(session: Session, media: tuple[Media, ...]) -> int:
    from monitor.services.ingest import record_posts

    return record_posts(session=session, posts=[make_post(media=media)]).new_ids[0]


def _item(engine: Engine, post_id: int) -> MediaItem:
    with Session(engine) as session:
        return session.exec(select(MediaItem).where(MediaItem.post_id == post_id)).one()


def _approve(engine: Engine, settings: Settings, post_id: int) -> None:
    with session_scope(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        decide(
            session=session,
            post=post,
            action="approve",
            actor="mod",
            settings=settings,
            media_seen=True,
            acknowledged_flags=flag_reasons(post),
        )


def test_faces_are_flagged_need_consent_and_publish_blurred_exactly_as_seen(
    engine: Engine,
    settings: Settings,
    analyser: Analyser,
    fake_server: FakeServer,
    detector: FaceDetector,
) -> None:
    make_user(engine, "mod", "moderator")
    post_id = _post_with(engine, fake_server, jpeg(picture("astronaut")))
    stage_all_waiting(engine=engine, settings=settings)
    analyse_waiting(engine=engine, settings=settings, analyser=analyser)
    original = _item(engine, post_id)
    with Session(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        [card] = load_cards(session, [post], image_analysis=True)
    assert flag_reasons(post) == ["1 face in image 1"] and card.blur_media
    assert card.faces == ["1 face in image 1"]

    with pytest.raises(FacesNeedConsent, match="1 face in image 1; record the consent"):
        _approve(engine, settings, post_id)

    assert blur_faces(engine=engine, settings=settings, post_id=post_id, actor="mod") == 1

    blurred = _item(engine, post_id)
    assert blurred.pinned_hash != original.pinned_hash
    with Session(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        [card] = load_cards(session, [post], image_analysis=True)
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == Action.FACES_BLURRED))
    assert card.faces == [] and card.blurred_positions == [1] and event.actor == "mod"
    # The card shows the blurred copy: the version moved on, so an older page is stale.
    assert post.version > 1
    path = pinned_file(settings.media_dir, blurred.pinned_path.rpartition("/")[2])  # type: ignore[union-attr]
    stored = Image.open(path).convert("RGB")
    assert faces_in(detector, stored) == []
    face = ASTRONAUT_FACE
    before = np.asarray(
        picture("astronaut").crop((face.left, face.top, face.right, face.bottom)), dtype=float
    )
    after = np.asarray(stored.crop((face.left, face.top, face.right, face.bottom)), dtype=float)
    assert np.abs(before - after).mean() > 10  # the face region really changed
    # Away from the face, the picture is as it was (give or take JPEG).
    corner_before = np.asarray(picture("astronaut").crop((400, 300, 500, 400)), dtype=float)
    assert (
        np.abs(corner_before - np.asarray(stored.crop((400, 300, 500, 400)), dtype=float)).mean()
        < 8
    )

    _approve(engine, settings, post_id)

    with Session(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None and post.status == PostStatus.APPROVED
    # Exactly the blurred files are what is published (the gallery serves pinned_hash).
    published = _item(engine, post_id)
    assert published.pinned_hash == blurred.pinned_hash
    assert (
        path.read_bytes()
        == pinned_file(
            settings.media_dir,
            pinned_name(published.pinned_hash or "", published.pinned_widths[-1]),  # type: ignore[index]
        ).read_bytes()
    )


def test_faces_published_unblurred_need_consent_on_record(
    engine: Engine, settings: Settings, analyser: Analyser, fake_server: FakeServer
) -> None:
    make_user(engine, "mod", "moderator")
    post_id = _post_with(engine, fake_server, jpeg(picture("astronaut")))
    stage_all_waiting(engine=engine, settings=settings)
    analyse_waiting(engine=engine, settings=settings, analyser=analyser)
    from datetime import date

    with session_scope(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        record_consent(
            session=session,
            post=post,
            actor="mod",
            how="The person shown agreed by email",
            obtained_on=date(2021, 3, 18),
        )

    _approve(engine, settings, post_id)

    with Session(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None and post.status == PostStatus.APPROVED


def test_blurring_a_post_without_faces_is_refused(
    engine: Engine, settings: Settings, analyser: Analyser, fake_server: FakeServer
) -> None:
    make_user(engine, "mod", "moderator")
    post_id = _post_with(engine, fake_server, jpeg(picture("coffee")))
    stage_all_waiting(engine=engine, settings=settings)
    analyse_waiting(engine=engine, settings=settings, analyser=analyser)

    with pytest.raises(UserError, match="no faces were found"):
        blur_faces(engine=engine, settings=settings, post_id=post_id, actor="mod")
