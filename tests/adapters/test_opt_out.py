"""Authors who asked not to be shown publicly are recognised (issue 12, consent and
opt-outs): payload shapes written from each platform's documentation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from adapters.bluesky import normalise_post
from adapters.mastodon import normalise_status
from tests.adapters.test_bluesky import _view

INSTANCE = "https://example.social"


def _status(**account: Any) -> dict[str, Any]:
    """A status whose Account entity carries the given fields (Mastodon API, Account)."""
    return {
        "id": "109000000000000100",
        "uri": f"{INSTANCE}/users/a/statuses/1",
        "url": f"{INSTANCE}/@a/1",
        "created_at": "2021-03-18T08:00:00.000Z",
        "content": "<p>My hands #CEADAY21</p>",
        "account": {
            "id": "1",
            "acct": "a",
            "display_name": "A",
            "url": f"{INSTANCE}/@a",
            **account,
        },
        "tags": [{"name": "ceaday21", "url": f"{INSTANCE}/tags/ceaday21"}],
    }


@pytest.mark.parametrize(
    ("account", "words"),
    [
        ({"indexable": False}, "not indexable"),
        ({"noindex": True}, "noindex"),
        ({"discoverable": False}, "not discoverable"),
    ],
)
def test_mastodon_opt_outs_are_read_from_the_account(account: dict[str, Any], words: str) -> None:
    post = normalise_status(INSTANCE, _status(**account))
    assert post.opt_out is not None and words in post.opt_out


def test_a_mastodon_account_that_says_nothing_or_opts_in_is_not_an_opt_out() -> None:
    assert normalise_status(INSTANCE, _status()).opt_out is None  # an older server
    opted_in = _status(indexable=True, noindex=False, discoverable=True)
    assert normalise_status(INSTANCE, opted_in).opt_out is None


def _label(value: str, *, neg: bool = False) -> dict[str, Any]:
    return {"src": "did:plc:abc", "uri": "at://did:plc:abc", "val": value, "neg": neg,
            "cts": "2024-10-10T17:00:00.000Z"}  # fmt: skip


def test_bluesky_no_unauthenticated_label_on_the_account_or_the_post() -> None:
    on_account = _view()
    on_account["author"] = {**on_account["author"], "labels": [_label("!no-unauthenticated")]}
    assert "account" in (normalise_post(on_account).opt_out or "")

    self_labelled = _view()
    record = copy.deepcopy(self_labelled["record"])
    record["labels"] = {
        "$type": "com.atproto.label.defs#selfLabels",
        "values": [{"val": "!no-unauthenticated"}],
    }
    self_labelled["record"] = record
    assert "post" in (normalise_post(self_labelled).opt_out or "")


def test_a_negated_bluesky_label_is_no_opt_out() -> None:
    view = _view(labels=[_label("!no-unauthenticated"), _label("!no-unauthenticated", neg=True)])
    assert normalise_post(view).opt_out is None
    assert normalise_post(_view()).opt_out is None
