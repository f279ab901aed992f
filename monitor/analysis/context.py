"""What the detectors may consult, built from the database once per batch of images, and
what they noted, stored back afterwards.

The detectors themselves never touch the database: :func:`build_context` reads
the enabled text rules and the hash banks into plain callables, and
:func:`store_notes` writes the hashes and read text the detectors left in
``Context.notes`` (call it in the transaction that applies the findings).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session

from monitor.analysis.findings import Context, Verdict
from monitor.services import known_images
from monitor.services.rules import RuleAction, compile_enabled


def build_context(session: Session) -> Context:
    """The rules and banks as they are now, for one batch of images."""
    compiled = compile_enabled(session)
    matcher = known_images.bank_matcher(session)
    policy = known_images.never_again_policy(session)

    def text_reasons(text: str) -> Sequence[tuple[str, Verdict]]:
        return [
            (match.label, Verdict.REJECT if match.action == RuleAction.REJECT else Verdict.FLAG)
            for match in compiled.text_matches(text)
        ]

    def known_match(hex_hash: str) -> tuple[str, Verdict] | None:
        return matcher.match(hex_hash, policy)

    return Context(text_reasons=text_reasons, known_match=known_match)


def store_notes(session: Session, context: Context) -> None:
    """Keep each image's hash (its picture, the never-again bank) and read text."""
    known_images.store_facts(session, context.notes)
    context.notes.clear()
