"""What detectors may consult about this install, built from the database, and what
they noted about each image, stored back.

The detectors never touch the database: :func:`build_context` reads the enabled
text rules (place-name lists included) and the hash banks into plain callables.
The analyser process compiles the text rules at most every
:data:`CONTEXT_MAX_AGE_SECONDS`, so a rule an admin adds applies within seconds
while a long list (10,000 place names) is not recompiled for every image. The hash
banks and the never-again policy are read for every image (two small queries; the
banks are reloaded only when they changed,
:func:`monitor.services.known_images.bank_matcher`): a picture a moderator has just
rejected must be caught in the very next repost, not in one ten seconds later.

The context holds the shared rules and banks only: a detector sees no post's
campaigns. A campaign's own text rules and hash banks are run by the pipeline, over
what the detectors noted (the read text, the hashes), for the campaigns the post is
in (:func:`campaign_findings`), so force B's lists never look at force A's posts.

What the detectors learnt that is no finding (each image's PDQ hash, the text
read in it) they leave in ``Context.notes[media_id]``; the pipeline hands those
notes back with the findings and calls :func:`store_notes` in the transaction
that applies them, after applying them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlmodel import Session

from monitor.analysis.findings import Context, Finding, Verdict
from monitor.analysis.known import known_finding
from monitor.analysis.text import text_findings
from monitor.models import RuleAction
from monitor.services import known_images
from monitor.services.rules import (
    compile_enabled,
    list_rules,
    owner_label,
    pending_in,
    rule_sets,
    several_campaigns,
)

#: How long a built context is reused before it is built again from the database.
CONTEXT_MAX_AGE_SECONDS = 10.0


def build_context(session: Session, *, text_rules_of: Context | None = None) -> Context:
    """The rules and banks as they are now, for one image or a batch of them.

    ``text_rules_of`` is a context whose compiled text rules are reused as they are
    (the analyser's, younger than :data:`CONTEXT_MAX_AGE_SECONDS`); the banks and the
    policy are always read now."""
    matcher = known_images.bank_matcher(session)
    policy = known_images.never_again_policy(session)

    def known_match(hex_hash: str) -> tuple[str, Verdict] | None:
        return matcher.match(hex_hash, policy)

    if text_rules_of is not None:
        return Context(text_reasons=text_rules_of.text_reasons, known_match=known_match)
    compiled = compile_enabled(session)

    def text_reasons(text: str) -> Sequence[tuple[str, Verdict]]:
        return [(match.label, _verdict(match.action)) for match in compiled.text_matches(text)]

    return Context(text_reasons=text_reasons, known_match=known_match)


def _verdict(action: RuleAction) -> Verdict:
    return Verdict.REJECT if action == RuleAction.REJECT else Verdict.FLAG


def campaign_findings(
    session: Session, post_id: int, position: int, notes: Mapping[str, Any]
) -> list[tuple[int, Finding]]:
    """What the own text rules and hash banks of the campaigns the post is pending in
    find in one of its images (``notes``: what the detectors noted about it), each with
    its campaign's id. Two small reads for an install whose lists are all shared."""
    own = [r for r in list_rules(session=session) if r.enabled and r.campaign_id is not None]
    banked = {c.id or 0: c for c in known_images.campaigns_with_banks(session)}
    if not own and not banked:
        return []
    sets = {s.campaign.id or 0: s for s in rule_sets(session, own) if s.campaign is not None}
    placed = pending_in(session, [post_id], [*sets, *banked]).get(post_id, set())
    named = several_campaigns(session)
    text = notes.get("text")
    hashes = [h for h in notes.get("pdq_variants") or [] if isinstance(h, str)]
    hashed = bool(hashes) and (notes.get("pdq_quality") or 0) >= known_images.MIN_QUALITY
    found: list[tuple[int, Finding]] = []
    for campaign_id in sorted(placed):
        rule_set = sets.get(campaign_id)
        if isinstance(text, str) and rule_set is not None:
            reasons = [
                (rule_set.label(m.label), _verdict(m.action))
                for m in rule_set.compiled.text_matches(text)
            ]
            found += [(campaign_id, f) for f in text_findings(position, text, reasons)]
        if hashed and campaign_id in banked:
            matcher = known_images.bank_matcher(session, campaign_id)
            for candidate in hashes:
                if (match := matcher.match(candidate, "reject")) is not None:
                    reason, verdict = match
                    if named:
                        reason = owner_label(reason, banked[campaign_id])
                    finding = known_finding(position, candidate, (reason, verdict))
                    found.append((campaign_id, finding))
                    break
    return found


def take_notes(context: Context, media_id: int) -> dict[str, Any] | None:
    """One image's notes, removed from the context (which outlives the image): what the
    analyser sends back beside the image's findings."""
    return context.notes.pop(media_id, None)


def store_notes(session: Session, notes: Mapping[int, Mapping[str, Any]] | Context) -> None:
    """Keep each image's hash (its picture, the never-again bank) and read text: the
    notes by media id (from :func:`take_notes`), or a whole context's."""
    if isinstance(notes, Context):
        known_images.store_facts(session, notes.notes)
        notes.notes.clear()
    else:
        known_images.store_facts(session, notes)
