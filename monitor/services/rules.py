"""Admin rules run on new posts at ingestion: they may reject or flag, never approve.

Kinds of rule:

- ``blocked_term``: a word or phrase, matched on word boundaries, ignoring case
  and accents ("Café" blocks "cafe" but not "cafeteria");
- ``blocked_author``: an author handle (the leading ``@`` is optional);
- ``detector``: a personal-data detector (UK phone numbers, email addresses,
  UK postcodes). Detectors only ever flag: a human decides;
- ``place_names``: a list of the area's schools, estates and streets an admin
  uploaded (one name a line); any of them, on word boundaries, ignoring case and
  accents, flags the post. Place names only ever flag.

The text rules (everything but authors) run the same way over a post's text and
over the text read in its images (:meth:`CompiledRules.text_matches`).

Every automatic action is an audit row whose actor is ``rule:<id>`` and whose
detail names the rule, so a moderator can see why a post was rejected or flagged.

A rule or list is **shared** by every campaign (``campaign_id`` NULL, as every rule
was before campaigns) or **one campaign's own**. A shared rule rejects a post in every
campaign it is in; a campaign's own rule sees only that campaign's posts and rejects a
post only there (its placement, :func:`monitor.services.placements.set_status`), so
force B's blocked word never takes a post off force A's queue. A flag is a flag on the
post, shown to every team, so a campaign's own rule names its campaign in the flag's
words (:func:`owner_label`). Install admins choose per list whether it is shared;
a campaign's admins manage their campaign's own lists and read the shared ones
(:func:`reach_of`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import unicodedata
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime

import ahocorasick
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor.errors import UserError
from monitor.models import (
    AuditEvent,
    Campaign,
    CampaignPost,
    ModerationRule,
    PlaceName,
    Post,
    PostStatus,
    Role,
    RuleAction,
    RuleKind,
    User,
    utcnow,
)
from monitor.services import audit
from monitor.services.audit import Action
from monitor.services.placements import set_status

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


#: Curly quotes and dashes people and OCR use interchangeably with the plain ones.
_PLACE_PUNCTUATION = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2013": "-"})
MAX_PLACE_NAMES = 20_000
MAX_PLACE_FILE_BYTES = 2_000_000
_PLACE_HEADERS = {"name", "names", "place", "places", "place name", "place names", "place_name"}


def place_key(text: str) -> str:
    """A name or a text as place names are compared: folded, plain quotes, single spaces."""
    return " ".join(fold(text).translate(_PLACE_PUNCTUATION).split())


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
    #: The campaign whose own rule this is (None: a shared rule).
    campaign_id: int | None = None


def describe_rule(rule: ModerationRule) -> str:
    if rule.kind == RuleKind.PLACE_NAMES:
        return f"Place names “{rule.pattern}”"
    if rule.kind == RuleKind.DETECTOR:
        return f"Personal data: {DETECTORS[rule.pattern][0]}"
    if rule.kind == RuleKind.BLOCKED_AUTHOR:
        return f"Blocked author {rule.pattern}"
    return f"Blocked term “{rule.pattern}”"


def owner_label(label: str, campaign: Campaign) -> str:
    """A flag or rejection by a campaign's own rule, in words naming the campaign: every
    team sees a post's flags, and they must know the rule is not theirs."""
    return f"{label} ({campaign.name}'s own rule)"


def reach_of(user: User, campaign: Campaign) -> Campaign | None:
    """The lists ``user`` may change while working on ``campaign``: every list for an
    install admin (None), else the campaign's own (shared ones are read-only)."""
    return None if user.role == Role.ADMIN else campaign


def no_such(what: str, within: Campaign | None) -> UserError:
    """The refusal of a list that is not there for whoever asks: a campaign admin reads the
    same words for one that does not exist and for another campaign's (nothing leaks)."""
    return UserError(f"no {what}" if within is None else f"no {what} in campaign {within.slug!r}")


def _refuse_outside(rule_campaign_id: int | None, within: Campaign | None, what: str) -> None:
    """Refuse a change to a list outside ``within`` (None: an install admin, every list),
    without saying whether another campaign has such a list."""
    if within is None or rule_campaign_id == within.id:
        return
    if rule_campaign_id is None:
        raise UserError(f"{what} is shared by every campaign: only an install admin changes it")
    raise no_such(what, within)


def visible_rules(*, session: Session, campaign: Campaign) -> list[ModerationRule]:
    """The shared rules and ``campaign``'s own: what its admins see (never another's)."""
    owned = col(ModerationRule.campaign_id)
    query = select(ModerationRule).where(sa.or_(owned.is_(None), owned == campaign.id))
    return list(session.exec(query.order_by(col(ModerationRule.id))))


def validate_rule(
    kind_name: str, pattern: str, action_name: str
) -> tuple[RuleKind, str, RuleAction]:
    """Check an admin's rule; detectors and place names are forced to flag (never reject)."""
    try:
        kind = RuleKind(kind_name)
    except ValueError:
        raise UserError(
            f"rule kind {kind_name[:40]!r}: choose blocked_term, blocked_author, detector or"
            " place_names"
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
    if kind == RuleKind.PLACE_NAMES:
        return kind, pattern, RuleAction.FLAG
    if kind == RuleKind.BLOCKED_AUTHOR:
        pattern = pattern.lstrip("@")
        if not pattern or " " in pattern:
            raise UserError("an author is one handle, without spaces")
    if kind == RuleKind.BLOCKED_TERM and not fold(pattern).strip():
        raise UserError("a blocked term needs letters or digits")
    return kind, pattern, action


def _in_scope(session: Session, campaign: Campaign | None) -> list[ModerationRule]:
    """The rules a new one of ``campaign`` (None: shared) would sit beside: the shared
    ones and its own; for a shared one, every rule."""
    if campaign is None:
        return list_rules(session=session)
    return visible_rules(session=session, campaign=campaign)


def add_rule(
    *,
    session: Session,
    kind: str,
    pattern: str,
    action: str,
    actor: str,
    campaign: Campaign | None = None,
) -> ModerationRule:
    """Create a rule (audited), shared or ``campaign``'s own; an identical rule is not
    stored twice in one campaign's reach."""
    rule_kind, pattern, rule_action = validate_rule(kind, pattern, action)
    if rule_kind == RuleKind.PLACE_NAMES:
        raise UserError("a place-name list is uploaded as a file of names, one a line")
    for rule in _in_scope(session, campaign):
        if (rule.kind, fold(rule.pattern), rule.action) == (rule_kind, fold(pattern), rule_action):
            raise UserError(f"that rule already exists (rule {rule.id})")
    rule = ModerationRule(
        kind=rule_kind,
        pattern=pattern,
        action=rule_action,
        created_at=utcnow(),
        created_by=actor,
        campaign_id=None if campaign is None else campaign.id,
    )
    session.add(rule)
    session.flush()
    _audit_rule_change(session, rule, actor, Action.RULE_ADDED)
    return rule


def _rule_to_change(session: Session, rule_id: int, within: Campaign | None) -> ModerationRule:
    rule = session.get(ModerationRule, rule_id)
    if rule is None:
        raise no_such(f"rule {rule_id}", within)
    _refuse_outside(rule.campaign_id, within, f"rule {rule_id}")
    return rule


def set_rule_enabled(
    *,
    session: Session,
    rule_id: int,
    enabled: bool,
    actor: str,
    within: Campaign | None = None,
) -> ModerationRule:
    """Switch a rule on or off; ``within``: the campaign a campaign admin acts in."""
    rule = _rule_to_change(session, rule_id, within)
    if rule.enabled != enabled:
        rule.enabled = enabled
        session.add(rule)
        _audit_rule_change(
            session, rule, actor, Action.RULE_ENABLED if enabled else Action.RULE_DISABLED
        )
    return rule


def delete_rule(
    *, session: Session, rule_id: int, actor: str, within: Campaign | None = None
) -> None:
    rule = _rule_to_change(session, rule_id, within)
    _audit_rule_change(session, rule, actor, Action.RULE_DELETED)
    session.delete(rule)


def set_rule_scope(
    *,
    session: Session,
    rule_id: int,
    campaign: Campaign | None,
    actor: str,
    within: Campaign | None = None,
) -> ModerationRule:
    """Share a rule or list with every campaign (``campaign`` None) or make it one
    campaign's own: an install admin's choice (``within`` None), audited."""
    if within is not None:
        raise UserError("only an install admin shares a list or makes it one campaign's")
    rule = _rule_to_change(session, rule_id, None)
    wanted = None if campaign is None else campaign.id
    if rule.campaign_id != wanted:
        rule.campaign_id = wanted
        session.add(rule)
        session.flush()
        _audit_rule_change(session, rule, actor, Action.RULE_SCOPE_CHANGED)
    return rule


def _audit_rule_change(session: Session, rule: ModerationRule, actor: str, action: Action) -> None:
    audit.record(
        session,
        actor=actor,
        action=action,
        reason=describe_rule(rule),
        # The campaign of its own rule is the row's campaign; a shared rule has none.
        detail={"rule_id": rule.id, "kind": rule.kind, "pattern": rule.pattern},
        campaign_id=rule.campaign_id,
    )


def list_rules(*, session: Session) -> list[ModerationRule]:
    return list(session.exec(select(ModerationRule).order_by(col(ModerationRule.id))))


class PlaceMatcher:
    """Every name of the place-name lists in one Aho-Corasick automaton: one pass over a
    text finds all of 10,000 names, where 10,000 regular expressions would take 10,000.
    It keeps each rule's facts, not the rule row, so it outlives the session it came from."""

    def __init__(self, names: Iterable[tuple[ModerationRule, str]]) -> None:
        self._automaton: ahocorasick.Automaton | None = None
        automaton = ahocorasick.Automaton()
        for rule, name in names:
            key = place_key(name)
            facts = (rule.id or 0, rule.kind, rule.pattern, rule.action)
            # Each name also run together, as a hashtag writes it (#StMarysSchool) and as
            # OCR often reads handwriting ("EastgateAcademy").
            for variant in (key, _JOINERS.sub("", key)):
                if variant and variant not in automaton:
                    automaton.add_word(variant, (len(variant), facts, name))
        if len(automaton):
            automaton.make_automaton()
            self._automaton = automaton

    def find(self, text: str) -> list[RuleMatch]:
        """Each list name in ``text`` on word boundaries, once, in order of appearance."""
        if self._automaton is None:
            return []
        key = place_key(text)
        found: dict[str, RuleMatch] = {}
        for end, (length, (rule_id, kind, pattern, action), name) in self._automaton.iter(key):
            start = end - length + 1
            before = key[start - 1] if start > 0 else " "
            after = key[end + 1] if end + 1 < len(key) else " "
            if not _is_word_char(before) and not _is_word_char(after) and name not in found:
                found[name] = RuleMatch(rule_id, kind, pattern, action, f"Place name “{name}”")
        return list(found.values())


_JOINERS = re.compile(r"[\s'.-]+")


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


class CompiledRules:
    """The enabled rules, compiled once per batch of posts (or of images)."""

    def __init__(
        self,
        rules: Sequence[ModerationRule],
        place_names: Iterable[tuple[ModerationRule, str]] = (),
        *,
        places: PlaceMatcher | None = None,
    ) -> None:
        self.terms = [(r, term_regex(r.pattern)) for r in rules if r.kind == RuleKind.BLOCKED_TERM]
        self.authors = [
            (r, _author_key(r.pattern)) for r in rules if r.kind == RuleKind.BLOCKED_AUTHOR
        ]
        self.detectors = [
            (r, DETECTORS[r.pattern][1])
            for r in rules
            if r.kind == RuleKind.DETECTOR and r.pattern in DETECTORS
        ]
        self.places = places if places is not None else PlaceMatcher(place_names)

    def text_matches(self, raw: str) -> list[RuleMatch]:
        """Every text rule (terms, personal data, place names) ``raw`` trips, rejecting rules
        first: the one matcher for a post's text and for the text read in an image."""
        folded = fold(raw)
        found = [_match(r) for r, regex in self.terms if regex.search(folded)]
        found += [_match(r) for r, regex in self.detectors if regex.search(raw)]
        found += self.places.find(raw)
        return sorted(found, key=lambda m: m.action != RuleAction.REJECT)

    def matches(self, post: Post) -> list[RuleMatch]:
        """Every enabled rule the post trips, rejecting rules first."""
        raw = "\n".join(filter(None, (post.content_warning, post.text, post.author_name)))
        author = _author_key(post.author_handle)
        found = self.text_matches(raw)
        found += [_match(r) for r, key in self.authors if key == author]
        return sorted(found, key=lambda m: m.action != RuleAction.REJECT)


def _match(rule: ModerationRule) -> RuleMatch:
    return RuleMatch(rule.id or 0, rule.kind, rule.pattern, rule.action, describe_rule(rule))


#: The last automaton built per database and owner of its lists (shared, or a
#: campaign), with what it was built from: an analyser rebuilds its context every few
#: seconds, and 10,000 names take most of a second.
_place_cache: weakref.WeakKeyDictionary[
    Engine, dict[frozenset[int | None], tuple[object, PlaceMatcher]]
] = weakref.WeakKeyDictionary()


def compile_enabled(
    session: Session, rules: Sequence[ModerationRule] | None = None
) -> CompiledRules:
    """The enabled shared rules (or ``rules``) with the names of their place-name lists
    loaded; the names' automaton is reused while the lists are unchanged."""
    if rules is None:
        rules = [r for r in list_rules(session=session) if r.enabled and r.campaign_id is None]
    lists = {r.id: r for r in rules if r.kind == RuleKind.PLACE_NAMES and r.id is not None}
    if not lists:
        return CompiledRules(rules)
    in_lists = col(PlaceName.rule_id).in_(list(lists))
    count, last = session.execute(
        sa.select(sa.func.count(), sa.func.max(col(PlaceName.id))).where(in_lists)
    ).one()
    signature = (
        tuple(sorted((r.id, r.pattern, r.action) for r in lists.values())),
        int(count),
        int(last or 0),
    )
    per_owner = _place_cache.setdefault(session.get_bind().engine, {})
    owner = frozenset(r.campaign_id for r in lists.values())
    cached = per_owner.get(owner)
    if cached is not None and cached[0] == signature:
        return CompiledRules(rules, places=cached[1])
    rows = session.execute(sa.select(col(PlaceName.rule_id), col(PlaceName.name)).where(in_lists))
    matcher = PlaceMatcher((lists[rule_id], name) for rule_id, name in rows)
    per_owner[owner] = (signature, matcher)
    return CompiledRules(rules, places=matcher)


def parse_place_names(data: bytes) -> list[str]:
    """The names in an uploaded list: CSV or plain text, one name a line (the first column),
    UTF-8; blank lines, a header line and repeats are dropped. Refuses what is not such a list."""
    if not data.strip():
        raise UserError("the file is empty: give one place name a line")
    if len(data) > MAX_PLACE_FILE_BYTES:
        raise UserError(f"the file is over {MAX_PLACE_FILE_BYTES // 1_000_000} MB")
    if b"\x00" in data:
        raise UserError("the file is not text: give a CSV or text file, one place name a line")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError("the file is not UTF-8 text: save it as “CSV UTF-8”") from None
    names: dict[str, str] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        name = " ".join(row[0].split()) if row else ""
        if not name or (number == 1 and name.casefold() in _PLACE_HEADERS):
            continue
        if len(name) > MAX_PATTERN_CHARS:
            raise UserError(
                f"line {number}: a place name is at most {MAX_PATTERN_CHARS} characters"
            )
        if not any(ch.isalnum() for ch in place_key(name)):
            raise UserError(f"line {number}: {name[:40]!r} has no letters or digits")
        names.setdefault(place_key(name), name)
        if len(names) > MAX_PLACE_NAMES:
            raise UserError(f"a list holds at most {MAX_PLACE_NAMES} names")
    if not names:
        raise UserError("the file has no place names: give one a line")
    return list(names.values())


def add_place_list(
    *, session: Session, title: str, data: bytes, actor: str, campaign: Campaign | None = None
) -> ModerationRule:
    """Store an uploaded place-name list as one flagging rule (audited) and its names,
    shared or ``campaign``'s own."""
    title = " ".join(title.split())[:MAX_PATTERN_CHARS]
    if not title:
        raise UserError("name the list (e.g. “Schools in Eastgate”)")
    names = parse_place_names(data)
    for rule in _in_scope(session, campaign):
        if rule.kind == RuleKind.PLACE_NAMES and fold(rule.pattern) == fold(title):
            raise UserError(f"a place-name list called {title!r} exists (rule {rule.id})")
    rule = ModerationRule(
        kind=RuleKind.PLACE_NAMES,
        pattern=title,
        action=RuleAction.FLAG,
        created_at=utcnow(),
        created_by=actor,
        campaign_id=None if campaign is None else campaign.id,
    )
    session.add(rule)
    session.flush()
    session.execute(sa.insert(PlaceName), [{"rule_id": rule.id, "name": name} for name in names])
    audit.record(
        session,
        actor=actor,
        action=Action.RULE_ADDED,
        reason=describe_rule(rule),
        detail={
            "rule_id": rule.id,
            "kind": rule.kind,
            "pattern": rule.pattern,
            "names": len(names),
        },
        campaign_id=rule.campaign_id,
    )
    return rule


def place_name_counts(session: Session) -> dict[int, int]:
    """How many names each place-name list holds, for the rules page."""
    rows = session.execute(
        sa.select(col(PlaceName.rule_id), sa.func.count()).group_by(col(PlaceName.rule_id))
    )
    return {int(rule_id): int(count) for rule_id, count in rows}


@dataclasses.dataclass(slots=True)
class RulesOutcome:
    rejected: int = 0
    flagged: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class RuleSet:
    """Compiled rules of one owner: shared (``campaign`` None) or one campaign's own,
    which see only the posts pending in that campaign."""

    compiled: CompiledRules
    campaign: Campaign | None = None
    #: Name the campaign in the words (an install with one campaign needs not).
    named: bool = False

    def matches(self, post: Post, pending_in: Mapping[int, set[int]]) -> list[RuleMatch]:
        """What the post trips here; nothing if it is not pending in this set's campaign."""
        if self.campaign is None:
            return self.compiled.matches(post)
        campaign_id = self.campaign.id or 0
        if campaign_id not in pending_in.get(post.id or 0, set()):
            return []
        return [
            dataclasses.replace(match, campaign_id=campaign_id, label=self.label(match.label))
            for match in self.compiled.matches(post)
        ]

    def label(self, words: str) -> str:
        """A match's words as a moderator reads them: naming the campaign of its own rule."""
        if self.campaign is None or not self.named:
            return words
        return owner_label(words, self.campaign)


def several_campaigns(session: Session) -> bool:
    """More than one campaign: a campaign's own rule then names its campaign."""
    count = session.execute(sa.select(sa.func.count()).select_from(Campaign.__table__)).scalar()
    return int(count or 0) > 1


def rule_sets(session: Session, rules: Sequence[ModerationRule]) -> list[RuleSet]:
    """``rules`` compiled per owner: the shared ones first, then each campaign's own."""
    by_owner: dict[int | None, list[ModerationRule]] = {}
    for rule in rules:
        by_owner.setdefault(rule.campaign_id, []).append(rule)
    sets = [RuleSet(compile_enabled(session, by_owner.pop(None)))] if None in by_owner else []
    if by_owner:
        named = several_campaigns(session)
        for campaign_id, owned in sorted(by_owner.items(), key=lambda item: item[0] or 0):
            campaign = session.get(Campaign, campaign_id)
            if campaign is not None:
                sets.append(RuleSet(compile_enabled(session, owned), campaign, named))
    return sets


def pending_in(
    session: Session, post_ids: Sequence[int], campaign_ids: Iterable[int]
) -> dict[int, set[int]]:
    """Post id -> which of ``campaign_ids`` (those with their own lists) it is pending in."""
    owners = list(campaign_ids)
    if not owners or not post_ids:
        return {}
    placed = CampaignPost.__table__
    rows = session.execute(
        sa.select(placed.c.post_id, placed.c.campaign_id).where(
            placed.c.post_id.in_(list(post_ids)),
            placed.c.campaign_id.in_(owners),
            placed.c.status == PostStatus.PENDING,
        )
    )
    found: dict[int, set[int]] = {}
    for post_id, campaign_id in rows:
        found.setdefault(int(post_id), set()).add(int(campaign_id))
    return found


def apply_ingest_rules(*, session: Session, post_ids: Sequence[int]) -> RulesOutcome:
    """Run the enabled rules on new or edited posts in the caller's transaction; audit each
    action."""
    if not post_ids:
        return RulesOutcome()
    rules = [r for r in list_rules(session=session) if r.enabled]
    if not rules:
        return RulesOutcome()
    posts = list(
        session.exec(
            select(Post).where(col(Post.id).in_(list(post_ids)), Post.status == PostStatus.PENDING)
        )
    )
    sets = rule_sets(session, rules)
    owners = [s.campaign.id or 0 for s in sets if s.campaign is not None]
    placed = pending_in(session, [post.id or 0 for post in posts], owners)
    return _apply(session, sets, posts, placed, RulesOutcome())


def _apply(
    session: Session,
    sets: Sequence[RuleSet],
    posts: Iterable[Post],
    placed: Mapping[int, set[int]],
    outcome: RulesOutcome,
) -> RulesOutcome:
    """Each post's matches: a shared rejection rejects it everywhere (and nothing else is
    done); a campaign's own rejects it in that campaign; every other match flags it."""
    now = utcnow()
    for post in posts:
        found = [match for rule_set in sets for match in rule_set.matches(post, placed)]
        rejects = [match for match in found if match.action == RuleAction.REJECT]
        if any(match.campaign_id is None for match in rejects):
            _reject(session, post, next(m for m in rejects if m.campaign_id is None), now)
            outcome.rejected += 1
            continue
        rejected_in: dict[int | None, RuleMatch] = {}
        for match in rejects:
            rejected_in.setdefault(match.campaign_id, match)
        for match in rejected_in.values():
            _reject(session, post, match, now)
        outcome.rejected += bool(rejected_in)
        flags = [
            m for m in found if m.action == RuleAction.FLAG and m.campaign_id not in rejected_in
        ]
        if not flags:
            continue
        post.flagged = True
        # A post checked again after an edit keeps each reason once.
        post.flag_reasons = list(
            dict.fromkeys([*(post.flag_reasons or []), *(m.label for m in flags)])
        )
        session.add(post)
        for match in flags:
            _rule_event(session, post, match, Action.FLAG, now, to_status=post.status)
        outcome.flagged += 1
    return outcome


def _pending_batches(session: Session, campaign_id: int | None = None) -> Iterator[list[Post]]:
    """Every pending post (in ``campaign_id``, if given), a batch at a time by id (the
    backlog can be large)."""
    placed = CampaignPost.__table__
    if campaign_id is None:
        query = select(Post).where(Post.status == PostStatus.PENDING)
    else:
        query = select(Post).join(
            placed,
            sa.and_(
                placed.c.post_id == Post.__table__.c.id,
                placed.c.campaign_id == campaign_id,
                placed.c.status == PostStatus.PENDING,
            ),
        )
    last = 0
    while True:
        batch = list(
            session.exec(
                query.where(col(Post.id) > last).order_by(col(Post.id)).limit(_BACKLOG_BATCH)
            )
        )
        if not batch:
            return
        yield batch
        last = batch[-1].id or 0


def preview_on_pending(
    *, session: Session, kind: str, pattern: str, action: str, campaign: Campaign | None = None
) -> int:
    """How many pending posts a rule would hit, before it is added (nothing changes): in
    ``campaign`` for its own rule, anywhere for a shared one."""
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
    batches = _pending_batches(session, None if campaign is None else campaign.id)
    return sum(1 for batch in batches for post in batch if compiled.matches(post))


def apply_to_pending(*, session: Session, rule: ModerationRule) -> RulesOutcome:
    """Run one (new) rule over the pending backlog at once, audited per post like ingestion:
    a campaign's own rule over that campaign's pending posts only."""
    sets = rule_sets(session, [rule])
    outcome = RulesOutcome()
    for batch in _pending_batches(session, rule.campaign_id):
        placed = {post.id or 0: {rule.campaign_id} for post in batch if rule.campaign_id}
        _apply(session, sets, batch, placed, outcome)
        session.flush()
    return outcome


def _reject(session: Session, post: Post, match: RuleMatch, now: datetime) -> None:
    """Reject the post in the rule's campaign (a shared rule: in every campaign)."""
    _rule_event(session, post, match, Action.REJECT, now, to_status=PostStatus.REJECTED)
    if match.campaign_id is None:
        post.status = PostStatus.REJECTED
    post.version += 1
    session.add(post)
    session.flush()
    set_status(session, [post.id or 0], PostStatus.REJECTED, campaign_id=match.campaign_id)


def _rule_event(
    session: Session,
    post: Post,
    match: RuleMatch,
    action: Action,
    now: datetime,
    *,
    to_status: PostStatus,
) -> AuditEvent:
    return audit.record(
        session,
        post=post,
        at=now,
        actor=f"rule:{match.rule_id}",
        action=action,
        to_status=to_status,
        reason=f"Automatic: {match.label}",
        detail={"rule_id": match.rule_id, "kind": match.kind, "pattern": match.pattern},
        campaign_id=match.campaign_id,
    )
