"""Admin rules run on new posts at ingestion: they may reject or flag, never approve.

Kinds of rule:

- ``blocked_term``: a word or phrase, matched on word boundaries, ignoring case
  and accents ("Café" blocks "cafe" but not "cafeteria");
- ``blocked_author``: an author handle (the leading ``@`` is optional);
- ``detector``: a personal-data detector (UK phone numbers, email addresses,
  UK postcodes). Detectors only ever flag: a human decides.

Every automatic action is an audit row whose actor is ``rule:<id>`` and whose
detail names the rule, so a moderator can see why a post was rejected or flagged.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from monitor.errors import UserError
from monitor.models import (
    ModerationEvent,
    ModerationRule,
    Post,
    PostStatus,
    RuleAction,
    RuleKind,
    utcnow,
)
from monitor.services import audit
from monitor.services.audit import Action

MAX_PATTERN_CHARS = 300
_BACKLOG_BATCH = 500


#: Personal-data detectors: name -> (what a moderator reads, pattern on the raw text).
DETECTORS: dict[str, tuple[str, re.Pattern[str]]] = {
    "uk_phone": (
        "looks like a UK phone number",
        re.compile(
            r"(?<![\d+])(?:"
            r"(?:\+|00)44[\s-]?(?:\(0\)[\s-]?)?(?:\d[\s-]?){8,9}\d"
            r"|0(?:\d[\s-]?){8,9}\d"
            r"|\(0\d{2,4}\)[\s-]?(?:\d[\s-]?){5,7}\d"
            r")(?!\d)"
        ),
    ),
    "email": (
        "contains an email address",
        re.compile(
            r"(?<![\w.+@-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w@])"
        ),
    ),
    "uk_postcode": (
        "looks like a UK postcode",
        re.compile(
            r"\b(?:GIR ?0AA|[A-PR-UWYZ](?:\d[A-HJKPSTUW\d]?|[A-HK-Y]\d[ABEHMNPRVWXY\d]?)"
            r" ?\d[ABD-HJLNP-UW-Z]{2})\b"
        ),
    ),
}


def fold(text: str) -> str:
    """Compare text ignoring case and accents: NFKD, drop combining marks, casefold."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def term_regex(term: str) -> re.Pattern[str]:
    """A phrase on word boundaries over folded text; any run of spaces matches any other."""
    words = fold(term).split()
    return re.compile(r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words) + r"(?!\w)")


def _author_key(handle: str) -> str:
    return fold(handle.strip()).lstrip("@")


@dataclasses.dataclass(frozen=True, slots=True)
class RuleMatch:
    rule_id: int
    kind: RuleKind
    pattern: str
    action: RuleAction
    #: What a moderator reads on the card and in the audit log.
    label: str


def describe_rule(rule: ModerationRule) -> str:
    if rule.kind == RuleKind.DETECTOR:
        return f"Personal data: {DETECTORS[rule.pattern][0]}"
    if rule.kind == RuleKind.BLOCKED_AUTHOR:
        return f"Blocked author {rule.pattern}"
    return f"Blocked term “{rule.pattern}”"


def validate_rule(
    kind_name: str, pattern: str, action_name: str
) -> tuple[RuleKind, str, RuleAction]:
    """Check an admin's rule; detectors are forced to flag (they never reject)."""
    try:
        kind = RuleKind(kind_name)
    except ValueError:
        raise UserError(
            f"rule kind {kind_name[:40]!r}: choose blocked_term, blocked_author or detector"
        ) from None
    try:
        action = RuleAction(action_name)
    except ValueError:
        raise UserError(f"rule action {action_name[:40]!r}: choose reject or flag") from None
    pattern = " ".join(pattern.split())
    if not pattern:
        raise UserError("a rule needs a term, an author or a detector name")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise UserError(f"a rule's pattern is at most {MAX_PATTERN_CHARS} characters")
    if kind == RuleKind.DETECTOR:
        if pattern not in DETECTORS:
            raise UserError(f"detector {pattern[:40]!r}: choose {', '.join(DETECTORS)}")
        return kind, pattern, RuleAction.FLAG
    if kind == RuleKind.BLOCKED_AUTHOR:
        pattern = pattern.lstrip("@")
        if not pattern or " " in pattern:
            raise UserError("an author is one handle, without spaces")
    if kind == RuleKind.BLOCKED_TERM and not fold(pattern).strip():
        raise UserError("a blocked term needs letters or digits")
    return kind, pattern, action


def add_rule(
    *, session: Session, kind: str, pattern: str, action: str, actor: str
) -> ModerationRule:
    """Create a rule (audited); an identical rule is not stored twice."""
    rule_kind, pattern, rule_action = validate_rule(kind, pattern, action)
    for rule in list_rules(session=session):
        if (rule.kind, fold(rule.pattern), rule.action) == (rule_kind, fold(pattern), rule_action):
            raise UserError(f"that rule already exists (rule {rule.id})")
    rule = ModerationRule(
        kind=rule_kind,
        pattern=pattern,
        action=rule_action,
        created_at=utcnow(),
        created_by=actor,
    )
    session.add(rule)
    session.flush()
    _audit_rule_change(session, rule, actor, Action.RULE_ADDED)
    return rule


def set_rule_enabled(
    *, session: Session, rule_id: int, enabled: bool, actor: str
) -> ModerationRule:
    rule = session.get(ModerationRule, rule_id)
    if rule is None:
        raise UserError(f"no rule {rule_id}")
    if rule.enabled != enabled:
        rule.enabled = enabled
        session.add(rule)
        _audit_rule_change(
            session, rule, actor, Action.RULE_ENABLED if enabled else Action.RULE_DISABLED
        )
    return rule


def delete_rule(*, session: Session, rule_id: int, actor: str) -> None:
    rule = session.get(ModerationRule, rule_id)
    if rule is None:
        raise UserError(f"no rule {rule_id}")
    _audit_rule_change(session, rule, actor, Action.RULE_DELETED)
    session.delete(rule)


def _audit_rule_change(session: Session, rule: ModerationRule, actor: str, action: Action) -> None:
    audit.record(
        session,
        actor=actor,
        action=action,
        reason=describe_rule(rule),
        detail={"rule_id": rule.id, "kind": rule.kind, "pattern": rule.pattern},
    )


def list_rules(*, session: Session) -> list[ModerationRule]:
    return list(session.exec(select(ModerationRule).order_by(col(ModerationRule.id))))


class CompiledRules:
    """The enabled rules, compiled once per batch of posts."""

    def __init__(self, rules: Sequence[ModerationRule]) -> None:
        self.terms = [(r, term_regex(r.pattern)) for r in rules if r.kind == RuleKind.BLOCKED_TERM]
        self.authors = [
            (r, _author_key(r.pattern)) for r in rules if r.kind == RuleKind.BLOCKED_AUTHOR
        ]
        self.detectors = [
            (r, DETECTORS[r.pattern][1])
            for r in rules
            if r.kind == RuleKind.DETECTOR and r.pattern in DETECTORS
        ]

    def matches(self, post: Post) -> list[RuleMatch]:
        """Every enabled rule the post trips, rejecting rules first."""
        raw = "\n".join(filter(None, (post.content_warning, post.text, post.author_name)))
        folded = fold(raw)
        author = _author_key(post.author_handle)
        hits: list[ModerationRule] = []
        hits += [r for r, regex in self.terms if regex.search(folded)]
        hits += [r for r, key in self.authors if key == author]
        hits += [r for r, regex in self.detectors if regex.search(raw)]
        found = [RuleMatch(r.id or 0, r.kind, r.pattern, r.action, describe_rule(r)) for r in hits]
        return sorted(found, key=lambda m: m.action != RuleAction.REJECT)


@dataclasses.dataclass(slots=True)
class RulesOutcome:
    rejected: int = 0
    flagged: int = 0


def apply_ingest_rules(*, session: Session, post_ids: Sequence[int]) -> RulesOutcome:
    """Run the enabled rules on new or edited posts in the caller's transaction; audit each
    action."""
    if not post_ids:
        return RulesOutcome()
    rules = [r for r in list_rules(session=session) if r.enabled]
    if not rules:
        return RulesOutcome()
    posts = session.exec(
        select(Post).where(col(Post.id).in_(list(post_ids)), Post.status == PostStatus.PENDING)
    )
    return _apply(session, CompiledRules(rules), posts, RulesOutcome())


def _apply(
    session: Session, compiled: CompiledRules, posts: Iterable[Post], outcome: RulesOutcome
) -> RulesOutcome:
    now = utcnow()
    for post in posts:
        found = compiled.matches(post)
        if not found:
            continue
        if found[0].action == RuleAction.REJECT:
            _reject(session, post, found[0], now)
            outcome.rejected += 1
            continue
        post.flagged = True
        # A post checked again after an edit keeps each reason once.
        post.flag_reasons = list(
            dict.fromkeys([*(post.flag_reasons or []), *(m.label for m in found)])
        )
        session.add(post)
        for match in found:
            _rule_event(session, post, match, Action.FLAG, now, to_status=post.status)
        outcome.flagged += 1
    return outcome


def _pending_batches(session: Session) -> Iterator[list[Post]]:
    """Every pending post, a batch at a time by id (the backlog can be large)."""
    last = 0
    while True:
        batch = list(
            session.exec(
                select(Post)
                .where(Post.status == PostStatus.PENDING, col(Post.id) > last)
                .order_by(col(Post.id))
                .limit(_BACKLOG_BATCH)
            )
        )
        if not batch:
            return
        yield batch
        last = batch[-1].id or 0


def preview_on_pending(*, session: Session, kind: str, pattern: str, action: str) -> int:
    """How many pending posts a rule would hit, before it is added (nothing changes)."""
    rule_kind, pattern, rule_action = validate_rule(kind, pattern, action)
    rule = ModerationRule(
        id=0,
        kind=rule_kind,
        pattern=pattern,
        action=rule_action,
        created_at=utcnow(),
        created_by="",
    )
    compiled = CompiledRules([rule])
    return sum(1 for batch in _pending_batches(session) for post in batch if compiled.matches(post))


def apply_to_pending(*, session: Session, rule: ModerationRule) -> RulesOutcome:
    """Run one (new) rule over the pending backlog at once, audited per post like ingestion."""
    compiled = CompiledRules([rule])
    outcome = RulesOutcome()
    for batch in _pending_batches(session):
        _apply(session, compiled, batch, outcome)
        session.flush()
    return outcome


def _reject(session: Session, post: Post, match: RuleMatch, now: datetime) -> None:
    _rule_event(session, post, match, Action.REJECT, now, to_status=PostStatus.REJECTED)
    post.status = PostStatus.REJECTED
    post.version += 1
    session.add(post)


def _rule_event(
    session: Session,
    post: Post,
    match: RuleMatch,
    action: Action,
    now: datetime,
    *,
    to_status: PostStatus,
) -> ModerationEvent:
    return audit.record(
        session,
        post=post,
        at=now,
        actor=f"rule:{match.rule_id}",
        action=action,
        to_status=to_status,
        reason=f"Automatic: {match.label}",
        detail={"rule_id": match.rule_id, "kind": match.kind, "pattern": match.pattern},
    )
