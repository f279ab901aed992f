"""Campaigns: what the install watches, on which platforms, and when.

A campaign names its hashtags and platforms and the days it runs (``TIMEZONE``
days). What the install polls and streams at any moment is the union over the
campaigns running that day (:func:`watched`): one source per platform and
target, however many campaigns share a tag, so fifty campaigns on one Mastodon
instance sharing twenty tags cost twenty requests a cycle, not a thousand.
Before its start date a campaign polls nothing; after its end date (or once
ended) it polls nothing and the sources only it needed retire at the next cycle,
kept for the history of the days they were watched.

The default campaign is the one every install has: its hashtags and platforms
are ``HASHTAGS`` and ``PLATFORMS`` (:func:`sync_default` copies them onto its row
for people to read), so an install that never adds a campaign never needs a
campaign command.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from adapters import available_adapters
from adapters.text import normalise_tag
from monitor.config import Settings, check_digest_time, check_recipients, check_sender
from monitor.db import read_only
from monitor.errors import UserError
from monitor.models import (
    Campaign,
    CampaignCredential,
    CampaignPost,
    CampaignRole,
    Role,
    User,
    utcnow,
)
from monitor.services import audit
from monitor.services.audit import Action
from monitor.services.sessions import end_sessions
from monitor.services.users import get_active_user, get_user, set_role

DEFAULT_SLUG = "default"
#: A slug is part of URLs (``/c/<slug>/gallery``): lower-case letters, digits and hyphens.
SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?")
_TAG_RE = re.compile(r"\w+")
MAX_NAME_CHARS = 200
#: How often the scheduler's leader looks again at what the campaigns watch: a
#: campaign added, ended or starting today is polled (or not) within this.
REPLAN_EVERY = timedelta(seconds=60)


class CampaignState(StrEnum):
    """Where a campaign is in its life on a given day."""

    UPCOMING = "upcoming"
    RUNNING = "running"
    ENDED = "ended"
    ARCHIVED = "archived"


def state_on(campaign: Campaign, today: date) -> CampaignState:
    """The campaign's state on ``today`` (a ``TIMEZONE`` day)."""
    if campaign.archived_at is not None:
        return CampaignState.ARCHIVED
    if campaign.ended_at is not None or (campaign.ends_on is not None and today > campaign.ends_on):
        return CampaignState.ENDED
    if campaign.starts_on is not None and today < campaign.starts_on:
        return CampaignState.UPCOMING
    return CampaignState.RUNNING


def runs_on(campaign: Campaign, day: date, zone: ZoneInfo) -> bool:
    """``day`` is one of the campaign's: from its start to its end date, or the day it
    was ended by a command if that came first (it takes posts then, and has a digest)."""
    ends = [campaign.ends_on] if campaign.ends_on is not None else []
    if campaign.ended_at is not None:
        ends.append(campaign.ended_at.astimezone(zone).date())
    started = campaign.starts_on is None or day >= campaign.starts_on
    return started and all(day <= end for end in ends)


def local_today(settings: Settings, now: datetime | None = None) -> date:
    """Today in the install's ``TIMEZONE``: the day campaigns start and end by."""
    return (now or utcnow()).astimezone(settings.zone).date()


def split_list(text: str) -> list[str]:
    """A stored comma list, without blanks."""
    return [item.strip() for item in text.split(",") if item.strip()]


@dataclasses.dataclass(frozen=True)
class Watch:
    """What the install watches now: per platform, the hashtags (as given, one per tag)
    polled with the install's credentials, and apart from them, per (platform, campaign
    id), those a campaign polls with its own (:mod:`monitor.services.credentials`).

    A campaign with its own credentials for a platform is in ``own`` only: its tags
    never go out with the install's account, nor anyone else's tags with its account.
    """

    tags: dict[str, tuple[str, ...]]
    own: dict[tuple[str, int], tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def platforms(self) -> list[str]:
        return [platform for platform, tags in self.tags.items() if tags]

    def tags_for(self, platform: str, campaign_id: int | None = None) -> tuple[str, ...]:
        """The tags polled on ``platform`` with the install's credentials, or (given a
        campaign id) with that campaign's own."""
        if campaign_id is not None:
            return self.own.get((platform, campaign_id), ())
        return self.tags.get(platform, ())

    def all_tags(self) -> tuple[str, ...]:
        """Every watched tag on any platform, once each, in the order first given."""
        every = [*self.tags.values(), *self.own.values()]
        return _unique(tag for tags in every for tag in tags)

    def covers(
        self, platform: str, hashtags: Iterable[str], campaign_id: int | None = None
    ) -> bool:
        """A source on ``platform`` for ``hashtags`` (matching form), polling with the
        install's credentials or (given a campaign id) that campaign's, is still wanted."""
        wanted = {normalise_tag(tag) for tag in self.tags_for(platform, campaign_id)}
        return bool(wanted) and set(hashtags) <= wanted


def _unique(tags: Iterable[str]) -> tuple[str, ...]:
    """Each tag once (by its matching form), as first given."""
    first: dict[str, str] = {}
    for tag in tags:
        first.setdefault(normalise_tag(tag), tag)
    return tuple(first.values())


def campaign_tags(campaign: Campaign, settings: Settings) -> tuple[str, ...]:
    """The campaign's hashtags: the default campaign's are ``HASHTAGS``."""
    return tuple(settings.hashtags) if campaign.is_default else tuple(split_list(campaign.hashtags))


def campaign_platforms(
    campaign: Campaign, settings: Settings, own: Collection[str] = ()
) -> list[str]:
    """The platforms the campaign is polled on: those it names that the install enables,
    or that it holds its own credentials for (``own``).

    The default campaign's are ``PLATFORMS`` (or every configured adapter), as before
    campaigns; a campaign naming none takes every platform the install enables.
    """
    enabled = list(dict.fromkeys([*settings.enabled_platforms, *sorted(own)]))
    named = [] if campaign.is_default else split_list(campaign.platforms)
    return [platform for platform in enabled if not named or platform in named]


def own_credential_platforms(session: Session) -> dict[int, set[str]]:
    """Per campaign id, the platforms it holds any credential of its own for."""
    rows = session.exec(
        select(CampaignCredential.campaign_id, CampaignCredential.platform).distinct()
    )
    own: dict[int, set[str]] = {}
    for campaign_id, platform in rows:
        own.setdefault(campaign_id, set()).add(platform)
    return own


def watched(session: Session, settings: Settings, today: date | None = None) -> Watch:
    """What the install watches on ``today``: the running campaigns' hashtags, per platform
    and per credentials."""
    today = today or local_today(settings)
    running = [
        campaign
        for campaign in list_campaigns(session, settings)
        if state_on(campaign, today) is CampaignState.RUNNING
    ]
    return watch_of(running, settings, own_credential_platforms(session))


def watch_of(
    campaigns: Iterable[Campaign],
    settings: Settings,
    own: Mapping[int, Collection[str]] | None = None,
) -> Watch:
    """The union of these campaigns' hashtags, per platform (a tag shared is one tag);
    a campaign's tags on a platform it holds credentials for (``own``) apart, its own."""
    shared: dict[str, list[str]] = {}
    owned: dict[tuple[str, int], list[str]] = {}
    for campaign in campaigns:
        mine = (own or {}).get(campaign.id or 0, ()) if not campaign.is_default else ()
        for platform in campaign_platforms(campaign, settings, mine):
            tags = campaign_tags(campaign, settings)
            if platform in mine:
                owned.setdefault((platform, campaign.id or 0), []).extend(tags)
            else:
                shared.setdefault(platform, []).extend(tags)
    return Watch(
        {platform: _unique(tags) for platform, tags in shared.items()},
        {key: _unique(tags) for key, tags in owned.items()},
    )


def current_watch(engine: Engine, settings: Settings) -> Watch:
    """:func:`watched` today, in its own short read (no write lock: a writer holding the
    database must not stop a poll from knowing what to poll; its stores then say why)."""
    with Session(read_only(engine)) as session:
        return watched(session, settings)


def list_campaigns(session: Session, settings: Settings) -> list[Campaign]:
    """Every campaign, the default first, then by start date and slug.

    Only reads: a database whose default campaign row is missing (made by
    ``create_all``, not the migrations) gets one in memory, written by the next
    :func:`sync_default`.
    """
    campaigns = list(session.exec(select(Campaign)))
    if not any(campaign.is_default for campaign in campaigns):
        campaigns.append(_default_from(settings))
    return sorted(campaigns, key=lambda c: (not c.is_default, c.starts_on or date.min, c.slug))


def _default_from(settings: Settings) -> Campaign:
    return Campaign(
        slug=DEFAULT_SLUG,
        name="Default campaign",
        hashtags=",".join(settings.hashtags),
        platforms=",".join(settings.platforms),
        is_default=True,
        created_at=utcnow(),
    )


def sync_default(session: Session, settings: Settings) -> Campaign:
    """The default campaign's row, made if missing and showing today's ``HASHTAGS`` and
    ``PLATFORMS`` (it follows the settings: see the module docstring)."""
    default = session.exec(select(Campaign).where(col(Campaign.is_default).is_(True))).first()
    wanted = _default_from(settings)
    if default is None:
        session.add(wanted)
        session.flush()
        return wanted
    if (default.hashtags, default.platforms) != (wanted.hashtags, wanted.platforms):
        default.hashtags, default.platforms = wanted.hashtags, wanted.platforms
        session.flush()
    return default


def get_campaign(session: Session, settings: Settings, slug: str | None) -> Campaign:
    """The campaign ``slug`` names (``None``: the default one); a clear error if none."""
    wanted = DEFAULT_SLUG if slug is None else slug.strip().lower()
    campaigns = list_campaigns(session, settings)
    campaign = next(
        (c for c in campaigns if (c.is_default if slug is None else c.slug == wanted)), None
    )
    if campaign is None:
        known = ", ".join(c.slug for c in campaigns)
        raise UserError(f"no campaign {slug!r}; campaigns: {known}")
    return campaign


def _stored(session: Session, settings: Settings, slug: str) -> Campaign:
    """The campaign's row, to change (the default one written first if missing)."""
    sync_default(session, settings)
    return get_campaign(session, settings, slug)


@dataclasses.dataclass(frozen=True)
class NewCampaign:
    """A campaign as ``campaigns add`` (or the admin page) asks for it, before checks."""

    slug: str
    name: str
    hashtags: Sequence[str]
    platforms: Sequence[str] = ()
    starts_on: date | None = None
    ends_on: date | None = None
    #: The digest's recipients, sender and time; empty or None: see :func:`digest_of`.
    digest_to: Sequence[str] = ()
    digest_from: str | None = None
    digest_time: str | None = None


def as_new(campaign: Campaign, settings: Settings) -> NewCampaign:
    """The campaign as it is, in the shape an edit starts from (``dataclasses.replace``
    what changes, then :func:`edit_campaign`)."""
    return NewCampaign(
        slug=campaign.slug,
        name=campaign.name,
        hashtags=campaign_tags(campaign, settings),
        platforms=list(settings.platforms)
        if campaign.is_default
        else split_list(campaign.platforms),
        starts_on=campaign.starts_on,
        ends_on=campaign.ends_on,
        digest_to=split_list(campaign.digest_to or ""),
        digest_from=campaign.digest_from,
        digest_time=campaign.digest_time,
    )


def _checked_digest(new: NewCampaign) -> tuple[list[str], str | None, str | None]:
    """The digest fields held to the checks of ``DIGEST_TO``, ``DIGEST_FROM`` and
    ``DIGEST_TIME`` (the same functions), or a UserError naming the option; blank: unset."""
    option = "--digest-to"
    try:
        recipients = check_recipients([item.strip() for item in new.digest_to if item.strip()])
        option = "--digest-from"
        sender = check_sender((new.digest_from or "").strip() or None)
        option = "--digest-time"
        at = (new.digest_time or "").strip() or None
        return recipients, sender, None if at is None else check_digest_time(at)
    except ValueError as exc:
        raise UserError(f"{option}: {exc}") from None


def _checked(new: NewCampaign, today: date, *, new_end: bool = True) -> NewCampaign:
    """The request with its values normalised, or a :class:`UserError` naming what is wrong.

    ``new_end``: the end date is being set, so one already past is refused (an edit that
    leaves an ended campaign's end date alone may keep it).
    """
    slug = new.slug.strip().lower()
    if not SLUG_RE.fullmatch(slug):
        raise UserError(
            f"slug {new.slug!r}: use 1-60 lower-case letters, digits and hyphens"
            " (it is part of the gallery's address)"
        )
    name = " ".join(new.name.split())
    if not name or len(name) > MAX_NAME_CHARS:
        raise UserError(f"--name: give a name of 1-{MAX_NAME_CHARS} characters")
    tags = [tag.strip().lstrip("#＃") for tag in new.hashtags if tag.strip()]
    bad = [tag for tag in tags if not _TAG_RE.fullmatch(tag) or tag.isdigit()]
    if not tags or bad:
        raise UserError(
            "--hashtags: give one or more hashtags of letters, digits or _, comma-separated"
            + (f" (not {', '.join(bad)})" if bad else "")
        )
    known = available_adapters()
    platforms = [name.strip().lower() for name in new.platforms if name.strip()]
    unknown = [name for name in platforms if name not in known]
    if unknown:
        raise UserError(
            f"--platforms: unknown platform {', '.join(unknown)}; known: {', '.join(known)}"
        )
    if new.starts_on and new.ends_on and new.ends_on < new.starts_on:
        raise UserError(
            f"--ends {new.ends_on.isoformat()} is before --starts {new.starts_on.isoformat()}"
        )
    digest_to, digest_from, digest_time = _checked_digest(new)
    if new_end and new.ends_on and new.ends_on < today:
        raise UserError(
            f"--ends {new.ends_on.isoformat()} is in the past: such a campaign would watch"
            " nothing (to collect old posts, add it with a later end and run backfill)"
        )
    return NewCampaign(
        slug=slug,
        name=name,
        hashtags=list(_unique(tags)),
        platforms=list(dict.fromkeys(platforms)),
        starts_on=new.starts_on,
        ends_on=new.ends_on,
        digest_to=digest_to,
        digest_from=digest_from,
        digest_time=digest_time,
    )


def add_campaign(
    session: Session, settings: Settings, new: NewCampaign, *, actor: str, today: date | None = None
) -> Campaign:
    """Add a campaign (audited); it starts polling on its start date, at the next cycle."""
    checked = _checked(new, today or local_today(settings))
    sync_default(session, settings)
    if session.exec(select(Campaign).where(Campaign.slug == checked.slug)).first() is not None:
        raise UserError(f"a campaign with the slug {checked.slug!r} exists already")
    campaign = Campaign(
        slug=checked.slug,
        name=checked.name,
        hashtags=",".join(checked.hashtags),
        platforms=",".join(checked.platforms),
        starts_on=checked.starts_on,
        ends_on=checked.ends_on,
        created_at=utcnow(),
    )
    _set_digest(campaign, checked)
    session.add(campaign)
    try:
        session.flush()
    except IntegrityError:  # a second `campaigns add` of the same slug, at the same moment
        raise UserError(f"a campaign with the slug {checked.slug!r} exists already") from None
    audit.record(
        session,
        actor=actor,
        action=Action.CAMPAIGN_ADDED,
        detail={"campaign": campaign.slug, "campaign_added": describe(campaign)},
    )
    return campaign


def end_campaign(
    session: Session, settings: Settings, slug: str, *, actor: str, now: datetime | None = None
) -> Campaign:
    """End a campaign now: its polling stops at the next cycle, its gallery stays up."""
    campaign = _stored(session, settings, slug)
    now = now or utcnow()
    state = state_on(campaign, local_today(settings, now))
    if state in (CampaignState.ENDED, CampaignState.ARCHIVED):
        raise UserError(f"campaign {campaign.slug!r} has already ended")
    campaign.ended_at = now
    audit.record(
        session, actor=actor, action=Action.CAMPAIGN_ENDED, detail={"campaign": campaign.slug}
    )
    return campaign


def archive_campaign(
    session: Session, settings: Settings, slug: str, *, actor: str, now: datetime | None = None
) -> Campaign:
    """Archive an ended campaign: its public gallery answers 410 Gone from now on."""
    campaign = _stored(session, settings, slug)
    now = now or utcnow()
    state = state_on(campaign, local_today(settings, now))
    if state is CampaignState.ARCHIVED:
        raise UserError(f"campaign {campaign.slug!r} is archived already")
    if state is not CampaignState.ENDED:
        raise UserError(
            f"campaign {campaign.slug!r} is {state.value}: end it first"
            f" (hashtag-monitor campaigns end {campaign.slug})"
        )
    campaign.archived_at = now
    audit.record(
        session, actor=actor, action=Action.CAMPAIGN_ARCHIVED, detail={"campaign": campaign.slug}
    )
    return campaign


def _set_digest(campaign: Campaign, checked: NewCampaign) -> None:
    """The checked digest fields onto the row (unset: NULL, see :func:`digest_of`)."""
    campaign.digest_to = ",".join(checked.digest_to) or None
    campaign.digest_from = checked.digest_from
    campaign.digest_time = checked.digest_time


def _added_removed(before: Iterable[str], after: Iterable[str]) -> tuple[list[str], list[str]]:
    """What ``after`` adds to ``before`` and takes from it, by matching form, as given."""
    was = {normalise_tag(item): item for item in before}
    now = {normalise_tag(item): item for item in after}
    return [now[k] for k in now if k not in was], [was[k] for k in was if k not in now]


def edit_campaign(
    session: Session,
    settings: Settings,
    slug: str,
    wanted: NewCampaign,
    *,
    actor: str,
    now: datetime | None = None,
) -> list[str]:
    """Change a campaign to ``wanted`` (start from :func:`as_new`); what changed, in words
    (audited with the tags and platforms added and removed; nothing: a UserError).

    Checked as ``campaigns add`` is, except that an end date left as it was may be past.
    The default campaign's hashtags and platforms are ``HASHTAGS`` and ``PLATFORMS``:
    refused here, with where to change them. Tags removed stop being polled at the next
    cycle (their sources retire); the digest of the day says when.
    """
    campaign = _stored(session, settings, slug)
    now = now or utcnow()
    before = as_new(campaign, settings)
    checked = _checked(
        dataclasses.replace(wanted, slug=campaign.slug),
        local_today(settings, now),
        new_end=wanted.ends_on != campaign.ends_on,
    )
    tags_added, tags_removed = _added_removed(before.hashtags, checked.hashtags)
    platforms_added, platforms_removed = _added_removed(before.platforms, checked.platforms)
    if campaign.is_default and (tags_added or tags_removed or platforms_added or platforms_removed):
        raise UserError(
            "the default campaign's hashtags and platforms are HASHTAGS and PLATFORMS:"
            " change them in the environment (.env) and restart"
        )
    changes = [f"hashtag #{tag} added" for tag in tags_added]
    changes += [f"hashtag #{tag} removed" for tag in tags_removed]
    changes += [f"platform {name} added" for name in platforms_added]
    changes += [f"platform {name} removed" for name in platforms_removed]
    fields = ("name", "starts_on", "ends_on", "digest_to", "digest_from", "digest_time")
    changed = {
        name: [_shown(getattr(before, name)), _shown(getattr(checked, name))]
        for name in fields
        if _shown(getattr(before, name)) != _shown(getattr(checked, name))
    }
    changes += [f"{name} {old} -> {new}" for name, (old, new) in changed.items()]
    if not changes:
        raise UserError(f"nothing to change: campaign {campaign.slug!r} is like that already")
    campaign.name = checked.name
    if not campaign.is_default:
        campaign.hashtags = ",".join(checked.hashtags)
        campaign.platforms = ",".join(checked.platforms)
    campaign.starts_on, campaign.ends_on = checked.starts_on, checked.ends_on
    _set_digest(campaign, checked)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=Action.CAMPAIGN_EDITED,
        at=now,
        reason="; ".join(changes),
        detail={
            "campaign": campaign.slug,
            "tags_added": tags_added,
            "tags_removed": tags_removed,
            "platforms_added": platforms_added,
            "platforms_removed": platforms_removed,
            "changed": changed,
        },
        campaign_id=campaign.id,
    )
    return changes


def _shown(value: object) -> str:
    """A field's value as the audit trail and the command say it ("-": unset)."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value) or "-"
    return "-" if value is None or value == "" else str(value)


@dataclasses.dataclass(frozen=True)
class DigestPlan:
    """Where and when a campaign's digest goes: its own fields, else the install's."""

    recipients: tuple[str, ...]
    sender: str | None
    time: str


def digest_of(campaign: Campaign, settings: Settings) -> DigestPlan:
    """A campaign's digest recipients, sender and time.

    Unset on the default campaign: ``DIGEST_TO``, ``DIGEST_FROM``, ``DIGEST_TIME``, as
    before campaigns. Unset on another: no recipients (one force's digest never goes to
    another's partners by default), the install's sender and time.
    """
    own = tuple(split_list(campaign.digest_to or ""))
    recipients = own or (tuple(settings.digest_to) if campaign.is_default else ())
    return DigestPlan(
        recipients=recipients,
        sender=campaign.digest_from or settings.digest_from,
        time=campaign.digest_time or settings.digest_time,
    )


def describe(campaign: Campaign) -> str:
    """The campaign in one line, for the audit trail and ``campaigns list``."""
    days = (
        f"{campaign.starts_on.isoformat() if campaign.starts_on else 'from the start'}"
        f" to {campaign.ends_on.isoformat() if campaign.ends_on else 'no end date'}"
    )
    platforms = campaign.platforms or "every enabled platform"
    tags = ", ".join(f"#{tag}" for tag in split_list(campaign.hashtags))
    return f"{campaign.slug} ({campaign.name}): {tags} on {platforms}, {days}"


def role_in(session: Session, user: User, campaign: Campaign) -> Role | None:
    """The user's role in ``campaign``: install admins are admins everywhere; the default
    campaign's role is ``User.role``; another campaign's is its grant (None: no role)."""
    if user.role == Role.ADMIN:
        return Role.ADMIN
    if campaign.is_default:
        return Role(user.role) if user.role != Role.NONE else None
    if campaign.id is None or user.id is None:
        return None
    grant = session.get(CampaignRole, (user.id, campaign.id))
    return None if grant is None else Role(grant.role)


def grant_role(
    session: Session, settings: Settings, *, name: str, slug: str, role: Role, actor: str
) -> str:
    """Give ``name`` a role in campaign ``slug`` (``none`` takes it away); what changed.

    In the default campaign the role is ``User.role`` itself (``users role``). An install
    admin is an admin everywhere and needs no grant. The user's sessions end, so every
    page is served under the new role at once.
    """
    campaign = _stored(session, settings, slug)
    user = get_user(session=session, name=name)
    if user.role == Role.ADMIN:
        raise UserError(f"{name} is an install admin: an admin in every campaign already")
    if campaign.is_default:
        if role == Role.ADMIN:
            raise UserError("an admin of the default campaign is an install admin: use users role")
        set_role(session=session, name=name, role=role, actor=actor)
        return f"{name} is now {role.value} in the default campaign"
    grant = session.get(CampaignRole, (user.id, campaign.id))
    before = None if grant is None else Role(grant.role)
    if before == role or (before is None and role == Role.NONE):
        raise UserError(f"{name} already has that role in campaign {campaign.slug!r}")
    if role == Role.NONE:
        assert grant is not None
        session.delete(grant)
    elif grant is None:
        session.add(CampaignRole(user_id=user.id or 0, campaign_id=campaign.id or 0, role=role))
    else:
        grant.role = role
    end_sessions(session=session, user_id=user.id or 0)
    audit.record(
        session,
        actor=actor,
        action=Action.CAMPAIGN_ROLE_GRANTED,
        reason=f"{name} in {campaign.slug}: {before.value if before else 'none'} -> {role.value}",
        campaign_id=campaign.id,
    )
    return f"{name} is now {role.value} in campaign {campaign.slug}"


def roles_for_post(session: Session, user: User, post_id: int) -> set[Role]:
    """The user's roles in the campaigns a post is in (its own role for a post in none):
    who may act on a post for every campaign, as an escalation or a takedown does."""
    ids = session.exec(select(CampaignPost.campaign_id).where(CampaignPost.post_id == post_id))
    campaigns = [c for c in (session.get(Campaign, cid) for cid in ids) if c is not None]
    if not campaigns:
        return {Role(user.role)}
    return {role for c in campaigns if (role := role_in(session, user, c)) is not None}


def require_post_moderator(session: Session, actor: str, post_id: int, doing: str) -> User:
    """``actor``, active and a moderator or admin of a campaign the post is in (a post in
    two campaigns is both teams'); else a UserError saying what they may not do."""
    user = get_active_user(session=session, name=actor)
    if not roles_for_post(session, user, post_id) & {Role.MODERATOR, Role.ADMIN}:
        raise UserError(
            f"{actor} moderates no campaign this post is in: only its moderators and admins {doing}"
        )
    return user


def campaigns_of(session: Session, settings: Settings, user: User) -> list[Campaign]:
    """The campaigns ``user`` has a role in, the default first (an admin: every one)."""
    campaigns = list_campaigns(session, settings)
    if user.role == Role.ADMIN:
        return campaigns
    granted = set(
        session.exec(select(CampaignRole.campaign_id).where(CampaignRole.user_id == user.id))
    )
    return [c for c in campaigns if (c.is_default and user.role != Role.NONE) or c.id in granted]


def pick_campaign(mine: Sequence[Campaign], chosen_id: int | None) -> Campaign | None:
    """The campaign a login works on, of the user's campaigns (:func:`campaigns_of`): the
    one it chose if the user still has a role there, else the user's first (the default
    one for a single-campaign install)."""
    chosen = next((c for c in mine if chosen_id is not None and c.id == chosen_id), None)
    return chosen or (mine[0] if mine else None)
