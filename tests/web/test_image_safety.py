"""Image safety on the web pages: place-name lists and hash banks on the admin page, the
text read in an image and reposts of one picture on the queue card."""

from __future__ import annotations

import re

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.db import session_scope
from monitor.models import HashBankEntry, MediaItem, ModerationRule, PlaceName, Post
from monitor.services.ingest import record_posts
from monitor.services.known_images import never_again_policy, store_facts
from tests.factories import make_post
from tests.web.auth_helpers import TestClient, csrf_token, login

HASH = "f" * 32 + "0" * 32


def _upload(client: TestClient, path: str, field: str, data: bytes, **fields: str) -> str:
    response = client.post(
        path,
        data={"csrf_token": csrf_token(client), **fields},
        files={field: ("list.csv", data, "text/csv")},
    )
    assert response.status_code == 200, response.text
    [message, *_] = re.findall(r'<p class="notice">([^<]*)</p>', response.text)
    return message


def test_an_admin_uploads_a_place_name_list_and_bad_files_are_explained(
    sqlite_engine: Engine, client: TestClient
) -> None:
    login(client, "ad")
    message = _upload(
        client, "/admin/rules/places", "names", "Eastgate Academy\nSt Mary’s\n".encode(),
        title="Schools",
    )  # fmt: skip
    assert message == "Added rule 4: Place names “Schools”, 2 names (flag)."
    assert "Place names “Schools” (2 names)" in client.get("/admin").text
    bad = _upload(client, "/admin/rules/places", "names", b"\x00\x01", title="Other")
    assert bad == "Not done: the file is not text: give a CSV or text file, one place name a line."
    missing = client.post(
        "/admin/rules/places", data={"csrf_token": csrf_token(client), "title": "No file"}
    )
    assert "the file is empty" in missing.text
    with Session(sqlite_engine) as session:
        assert len(session.exec(select(PlaceName)).all()) == 2
        assert len(session.exec(select(ModerationRule)).all()) == 4


def test_only_admins_upload_lists_and_banks(sqlite_engine: Engine, client: TestClient) -> None:
    login(client, "mo")
    for path, field in (("/admin/rules/places", "names"), ("/admin/hash-banks", "hashes")):
        response = client.post(
            path,
            data={"csrf_token": csrf_token(client), "title": "x", "name": "x"},
            files={field: ("x.csv", b"Eastgate\n" if field == "names" else HASH.encode())},
        )
        assert response.status_code == 403
    with Session(sqlite_engine) as session:
        assert session.exec(select(PlaceName)).all() == []
        assert session.exec(select(HashBankEntry)).all() == []


def test_an_admin_imports_a_hash_bank_and_sets_the_never_again_policy(
    sqlite_engine: Engine, client: TestClient
) -> None:
    login(client, "ad")
    assert "No hash list is shipped" in client.get("/admin").text
    ok = _upload(client, "/admin/hash-banks", "hashes", f"{HASH}\n".encode(), name="Programme")
    assert ok == "Imported the hash bank “Programme”: 1 hashes."
    bad = _upload(client, "/admin/hash-banks", "hashes", b"hash\nnot-a-hash\n", name="Bad")
    assert bad == "Not done: line 2: &#39;not-a-hash&#39; is not a PDQ hash (64 hex digits)."
    page = client.get("/admin").text
    assert "Programme" in page and "escalated, never shown" in page
    response = client.post(
        "/admin/never-again-policy", data={"csrf_token": csrf_token(client), "policy": "flag"}
    )
    assert "now flagged for a moderator" in response.text
    with Session(sqlite_engine) as session:
        assert never_again_policy(session) == "flag"
        [(bank_id,)] = session.execute(select(HashBankEntry.bank_id)).all()
    response = client.post(
        f"/admin/hash-banks/{bank_id}/delete", data={"csrf_token": csrf_token(client)}
    )
    assert "Deleted the hash bank “Programme”." in response.text


def _post_with_image(engine: Engine, text: str | None, pdq: str) -> tuple[int, int]:
    with session_scope(engine) as session:
        [post_id] = record_posts(session=session, posts=[make_post()]).new_ids
        media = session.exec(select(MediaItem).where(MediaItem.post_id == post_id)).one()
        store_facts(
            session,
            {media.id or 0: {"post_id": post_id, "text": text, "pdq": pdq, "pdq_quality": 100}},
        )
        return post_id, media.id or 0


def test_the_card_shows_the_read_text_and_offers_it_as_alt_text(
    sqlite_engine: Engine, client: TestClient
) -> None:
    post_id, media_id = _post_with_image(sqlite_engine, "You are\nnot alone", HASH)
    login(client, "mo")
    page = client.get(f"/queue/posts/{post_id}").text
    assert "Text read in image 1" in page
    assert "You are\nnot alone" in page
    assert (
        f'<q id="alt-suggestion-{media_id}">Hand with the words “You are not alone”'
        " written on it</q>"
    ) in page
    assert f'data-alt-target="alt-{media_id}"' in page
    with Session(sqlite_engine) as session:  # nothing is saved until the decision
        assert session.get_one(MediaItem, media_id).alt == "Hands"


def test_reposts_are_grouped_on_the_card_and_decided_together(
    sqlite_engine: Engine, client: TestClient
) -> None:
    first, _ = _post_with_image(sqlite_engine, None, HASH)
    near = HASH[:-1] + "1"  # one bit apart: the same picture
    others = [_post_with_image(sqlite_engine, None, near)[0] for _ in range(2)]
    different, _ = _post_with_image(sqlite_engine, None, "0" * 32 + "f" * 32)
    login(client, "mo")
    card = client.get(f"/queue/posts/{first}").text
    assert "The same picture was also posted by 2 others" in card
    assert "Reject all 3 pending posts of this picture" in card
    assert "also posted by" not in client.get(f"/queue/posts/{different}").text
    listing = client.get(f"/queue/posts/{others[0]}/reposts").text
    assert sorted(int(i) for i in re.findall(r'id="post-(\d+)"', listing)) == sorted(
        [first, *others]
    )
    selected = re.findall(r'name="selected" value="(\d+:\d+)"', card)
    response = client.post(
        "/queue/bulk",
        data={
            "csrf_token": csrf_token(client),
            "action": "reject",
            "reason_choice": "Spam or advertising",
            "selected": selected,
        },
        headers={"accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert sorted(response.json()["decided"]) == sorted([first, *others])
    with Session(sqlite_engine) as session:
        assert {session.get_one(Post, p).status for p in [first, *others]} == {"rejected"}
        assert session.get_one(Post, different).status == "pending"
    assert client.get("/queue/posts/999999/reposts").status_code == 404
