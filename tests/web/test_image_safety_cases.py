"""Issue 13's four cases, end to end: a hand with a phone number written on it, a face, an
explicit picture and a repost of a rejected picture each arrive in the queue already
flagged, hidden and explained, and neither the queue nor ``moderate approve`` approves
them before a person has shown the media and acknowledged every reason.

The real path: the Mastodon fake over HTTP, the poll, staging, the analyser process with
the real face, text and known-image detectors, the queue over HTTP and the command line,
on a real database. The nudity detector is the real one with only its model's raw output
stood in (``tests/monitor/analysis_detectors.py``): no explicit image is made or kept.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from markupsafe import escape
from PIL import Image, ImageOps
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from benchmarks.imageset import FONTS, hand, jpeg, photos
from monitor.analysis.nudity import REJECT_RULE
from monitor.analysis.runner import Analyser
from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import AuditEvent, Post, PostStatus
from monitor.services.analysis import analyse_waiting
from monitor.services.known_images import set_never_again_policy
from monitor.services.polling import poll_all
from monitor.services.staging import stage_all_waiting
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import Reply
from tests.monitor import analysis_detectors as fake
from tests.processes import CliResult
from tests.web.auth_helpers import TestClient, csrf_token

JSON = {"Accept": "application/json"}
PHONE = "Personal data: looks like a UK phone number (in image 1's text)"


@pytest.fixture(scope="module")
def analyser() -> Iterator[Analyser]:
    targets = {
        "faces": "monitor.analysis.faces:FaceDetector",
        "known_image": "monitor.analysis.known:KnownImageDetector",
        "nudity": "tests.monitor.analysis_detectors:StoodInNudity",
        "text": "monitor.analysis.text:TextDetector",
    }
    with Analyser(targets=targets) as analyser:
        analyser.start()
        yield analyser


@pytest.fixture
def settings(
    configure: Callable[..., Settings],
    tmp_path: Path,
    mastodon: FakeMastodon,
    sqlite_engine: Engine,
) -> Settings:
    # The analyser process and the command line open the database the test's engine is on.
    return configure(
        DATABASE_URL=sqlite_engine.url.render_as_string(hide_password=False),
        MASTODON_INSTANCES=mastodon.url,
        HASHTAGS="CEADAY21",
        OUTBOUND_ALLOW_PRIVATE="true",
        MEDIA_DIR=str(tmp_path / "media"),
        IMAGE_ANALYSIS="true",
        HTTP_TIMEOUT_SECONDS="10",
    )


@pytest.fixture
def arrive(
    sqlite_engine: Engine, settings: Settings, mastodon: FakeMastodon, analyser: Analyser
) -> Callable[[Image.Image], Post]:
    """Post a picture on the fake Mastodon, then poll, store and check it, as `run` does."""
    count = 0

    def post(picture: Image.Image) -> Post:
        nonlocal count
        count += 1
        buffer = io.BytesIO()
        picture.convert("RGB").save(buffer, "JPEG", quality=90)
        body = buffer.getvalue()
        mastodon.server.route(
            "GET",
            rf"/media/{count}\.jpg",
            lambda _r: Reply(200, body, {"Content-Type": "image/jpeg"}),
        )
        url = f"{mastodon.url}/media/{count}.jpg"
        attachment = {"id": str(count), "type": "image", "url": url, "preview_url": url}
        status = mastodon.add(
            "Write it on your hand #CEADAY21",
            media_attachments=[{**attachment, "description": "A picture"}],
        )
        poll_all(engine=sqlite_engine, settings=settings)
        stage_all_waiting(engine=sqlite_engine, settings=settings)
        assert analyse_waiting(engine=sqlite_engine, settings=settings, analyser=analyser) == 1
        with Session(sqlite_engine) as session:
            return session.exec(select(Post).where(Post.external_id == status["uri"])).one()

    return post


def _fields(client: TestClient, post: Post, **extra: object) -> dict[str, object]:
    return {
        "csrf_token": csrf_token(client),
        "post_id": str(post.id),
        "version": str(post.version),
        "return_to": "/queue",
        **extra,
    }


def _reload(engine: Engine, post: Post) -> Post:
    with Session(engine) as session:
        return session.get_one(Post, post.id)


def _ref(post: Post) -> str:
    return f"{post.platform}:{post.external_id}"


def _flagged_hidden_and_explained(client: TestClient, post: Post, reasons: list[str]) -> None:
    """The card says why the post is flagged, one box to tick a reason, and shows no image."""
    assert post.status == PostStatus.PENDING and post.flagged
    assert post.flag_reasons == reasons
    card = client.get(f"/queue/posts/{post.id}").text
    for reason in reasons:
        assert f'name="ack_flag" value="{escape(reason)}"' in card
    assert "Media hidden:" in card and "image 1 hidden" in card
    assert "<img src=" not in card


def _refused_until_shown(
    client: TestClient, cli: Callable[..., CliResult], engine: Engine, post: Post
) -> None:
    """Every reason acknowledged but the media not shown: refused in the queue and by
    ``moderate approve`` without ``--media-seen``; then shown (on the record)."""
    acks = {"ack_flag": list(post.flag_reasons or []), "action": "approve"}
    refused = client.post("/queue/decide", data=_fields(client, post, **acks), headers=JSON)
    assert refused.status_code == 409 and "its media is hidden" in refused.json()["message"]
    code, _, err = cli("moderate", "approve", _ref(post), "--as", "mo", "--ack-flags")
    assert code == 2 and "(pass --media-seen)" in err and "nothing was changed" in err
    assert _reload(engine, post).status == PostStatus.PENDING
    assert client.post("/queue/reveal", data=_fields(client, post), headers=JSON).json()["ok"]
    assert "<img src=" in client.get(f"/queue/posts/{post.id}").text


def _refused_until_acknowledged(
    client: TestClient, cli: Callable[..., CliResult], engine: Engine, post: Post
) -> None:
    """The media shown but a reason not acknowledged: refused in the queue and by
    ``moderate approve`` without ``--ack-flags``."""
    refused = client.post(
        "/queue/decide", data=_fields(client, post, action="approve"), headers=JSON
    )
    assert refused.status_code == 409 and "acknowledge each reason" in refused.json()["message"]
    code, _, err = cli("moderate", "approve", _ref(post), "--as", "mo", "--media-seen")
    assert code == 2 and "(pass --ack-flags)" in err and "nothing was changed" in err
    assert _reload(engine, post).status == PostStatus.PENDING


def _approved_once_looked_at(client: TestClient, engine: Engine, post: Post) -> None:
    acks = {"ack_flag": list(post.flag_reasons or []), "action": "approve"}
    approved = client.post("/queue/decide", data=_fields(client, post, **acks), headers=JSON)
    assert approved.status_code == 200, approved.text
    assert _reload(engine, post).status == PostStatus.APPROVED


def _reject_reason(engine: Engine, post: Post) -> str:
    with Session(engine) as session:
        query = select(AuditEvent.reason).where(
            AuditEvent.post_id == post.id, AuditEvent.action == "reject"
        )
        return session.exec(query.order_by(col(AuditEvent.id).desc())).first() or ""


def test_a_phone_number_written_on_a_hand(
    sqlite_engine: Engine,
    moderator: TestClient,
    cli: Callable[..., CliResult],
    arrive: Callable[[Image.Image], Post],
) -> None:
    picture = hand(
        "Call 07700 900123", seed=9, size=(800, 600), font=FONTS[0], angle=0, lighting="even"
    )
    post = arrive(picture)
    assert "07700" not in post.text  # the number is only in the picture
    _flagged_hidden_and_explained(moderator, post, [PHONE])
    _refused_until_shown(moderator, cli, sqlite_engine, post)
    page = moderator.get(f"/queue/posts/{post.id}").text
    assert "Text read in image 1" in page and "07700" in page
    _refused_until_acknowledged(moderator, cli, sqlite_engine, post)
    _approved_once_looked_at(moderator, sqlite_engine, post)


def test_a_face(
    sqlite_engine: Engine,
    moderator: TestClient,
    cli: Callable[..., CliResult],
    arrive: Callable[[Image.Image], Post],
) -> None:
    # A public-domain photo of an adult stands in for a child's: no child's photo is used.
    post = arrive(photos()["astronaut"])
    _flagged_hidden_and_explained(moderator, post, ["1 face in image 1"])
    assert "Faces found:" in moderator.get(f"/queue/posts/{post.id}").text
    _refused_until_shown(moderator, cli, sqlite_engine, post)
    # Shown and acknowledged, the faces still need consent or blurring.
    acks = {"ack_flag": ["1 face in image 1"], "action": "approve"}
    refused = moderator.post("/queue/decide", data=_fields(moderator, post, **acks), headers=JSON)
    assert refused.status_code == 409 and "record the consent" in refused.json()["message"]
    blurred = moderator.post("/queue/blur-faces", data=_fields(moderator, post), headers=JSON)
    assert blurred.status_code == 200, blurred.text
    # The blurred copy is a new picture to look at: hidden again until shown.
    post = _reload(sqlite_engine, post)
    _flagged_hidden_and_explained(moderator, post, ["1 face in image 1"])
    _refused_until_shown(moderator, cli, sqlite_engine, post)
    _refused_until_acknowledged(moderator, cli, sqlite_engine, post)
    _approved_once_looked_at(moderator, sqlite_engine, post)


def test_an_explicit_picture(
    sqlite_engine: Engine,
    moderator: TestClient,
    cli: Callable[..., CliResult],
    arrive: Callable[[Image.Image], Post],
) -> None:
    possible = arrive(Image.new("RGB", (640, 480), fake.NUDITY_FLAG))
    _flagged_hidden_and_explained(
        moderator, possible, ["Possible nudity: exposed buttocks in image 1"]
    )
    _refused_until_shown(moderator, cli, sqlite_engine, possible)
    _refused_until_acknowledged(moderator, cli, sqlite_engine, possible)

    # Above the reject score it never waits for a person: rejected, hidden, the rule named.
    explicit = arrive(Image.new("RGB", (640, 480), fake.NUDITY_REJECT))
    reason = f"Explicit: exposed genitals in image 1 ({REJECT_RULE})"
    assert explicit.status == PostStatus.REJECTED and explicit.flag_reasons == [reason]
    assert _reject_reason(sqlite_engine, explicit) == f"Automatic: {reason}"
    card = moderator.get(f"/queue/posts/{explicit.id}").text
    assert escape(reason) in card and "<img src=" not in card


def test_a_repost_of_a_rejected_picture(
    sqlite_engine: Engine,
    settings: Settings,
    moderator: TestClient,
    cli: Callable[..., CliResult],
    arrive: Callable[[Image.Image], Post],
) -> None:
    coffee = photos()["coffee"]
    first = arrive(coffee)
    assert first.flag_reasons in (None, [])
    fields = _fields(moderator, first, action="reject", reason_choice="Spam or advertising")
    assert moderator.post("/queue/decide", data=fields, headers=JSON).json()["ok"]

    # Mirrored and re-encoded, it is the same picture to PDQ: rejected again automatically,
    # though the same analyser process checks it within seconds of the rejection (the banks
    # were cached for ten seconds with the text rules, and such a repost went through).
    again = arrive(jpeg(ImageOps.mirror(coffee), quality=50))
    assert again.status == PostStatus.REJECTED
    [reason] = again.flag_reasons or []
    assert reason.startswith(f"Known image: a picture rejected before: image 1 of post {first.id},")
    assert "Spam" not in reason  # the earlier rejection's reason stays with its post
    assert _reject_reason(sqlite_engine, again) == f"Automatic: {reason}"
    card = moderator.get(f"/queue/posts/{again.id}").text
    assert escape(reason) in card and "<img src=" not in card

    # Where an admin chose "flag", the repost waits in the queue for a person instead.
    with session_scope(sqlite_engine) as session:
        set_never_again_policy(session=session, policy="flag", actor="ad")
    flagged = arrive(coffee.resize((coffee.width // 2, coffee.height // 2)))
    [reason] = flagged.flag_reasons or []
    assert re.fullmatch(
        rf"Known image: a picture rejected before: image 1 of post {first.id},"
        r" rejected \d\d \w{3} \d{4} \(image 1\)",
        reason,
    ), reason
    _flagged_hidden_and_explained(moderator, flagged, [reason])
    _refused_until_shown(moderator, cli, sqlite_engine, flagged)
    _refused_until_acknowledged(moderator, cli, sqlite_engine, flagged)
