"""``users`` and ``moderate``: accounts, and decisions from a script."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

import typer
from sqlmodel import Session, select

from monitor.cli._common import CLI_ACTOR, CampaignOption, echo, load, open_engine
from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import MediaItem, Post, Role
from monitor.services.alerts import send_pending_alerts
from monitor.services.analysis import blur_faces
from monitor.services.campaigns import get_campaign, grant_role
from monitor.services.consent import record_consent
from monitor.services.escalation import escalate
from monitor.services.moderation import (
    CloserLookNeeded,
    decide,
    find_post,
    flag_reasons,
    moderator_in,
    status_in_campaign,
)
from monitor.services.staging import stage_post
from monitor.services.users import (
    add_user,
    disable_totp,
    disable_user,
    enable_user,
    list_users,
    reset_password,
    set_password,
    set_role,
    unlock_logins,
)

T = TypeVar("T")
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
moderate_app = typer.Typer(help="Decide on posts from a script.", no_args_is_help=True)


def _read_password(from_stdin: bool, prompt: str = "Password") -> str:
    """A new password from stdin, or asked for twice on a terminal (never echoed)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UserError("no terminal to ask for the password: pipe it in with --password-stdin")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))


def _as_admin(change: Callable[[Session], T]) -> T:
    """Run one account change in a transaction, on the record as the command line."""
    engine = open_engine(load())
    with session_scope(engine) as session:
        return change(session)


PasswordStdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[Role, typer.Option("--role", help="viewer, moderator, admin or safeguarding.")],
    password_stdin: PasswordStdinOption = False,
    campaign: Annotated[
        str | None,
        typer.Option(
            "--campaign",
            metavar="SLUG",
            help="The role is in this campaign only (default: the default campaign).",
        ),
    ] = None,
) -> None:
    """Add a user; the password is read from stdin or asked for."""
    if role == Role.NONE:
        raise UserError("--role none: a user with no role sees nothing; give them a role")
    password = _read_password(password_stdin)
    settings = load()

    def add(session: Session) -> str:
        elsewhere = (
            campaign is not None and not get_campaign(session, settings, campaign).is_default
        )
        first = Role.NONE if elsewhere else role
        add_user(session=session, name=name, role=first, password=password, actor=CLI_ACTOR)
        if not elsewhere:
            return f"Added {name} as {role}."
        session.flush()
        assert campaign is not None
        grant_role(session, settings, name=name, slug=campaign, role=role, actor=CLI_ACTOR)
        return f"Added {name} as {role} in campaign {campaign} (no role in the others)."

    echo(_as_admin(add))


@users_app.command("grant")
def users_grant(
    name: str,
    campaign: Annotated[str, typer.Option("--campaign", metavar="SLUG", help="The campaign.")],
    role: Annotated[
        Role,
        typer.Option("--role", help="viewer, moderator, admin, safeguarding, or none to remove."),
    ],
) -> None:
    """Give a user a role in one campaign (none takes it away); their sessions end."""
    settings = load()
    echo(
        _as_admin(
            lambda session: grant_role(
                session, settings, name=name, slug=campaign, role=role, actor=CLI_ACTOR
            )
        )
    )


@users_app.command("list")
def users_list() -> None:
    """List users with their role and whether they are disabled."""
    engine = open_engine(load())
    with session_scope(engine) as session:
        for user in list_users(session=session):
            echo(f"{user.name}\t{user.role}\t{'disabled' if user.disabled else 'active'}")


@users_app.command("disable")
def users_disable(name: str) -> None:
    """Disable a user: they can no longer log in or decide."""
    _as_admin(lambda session: disable_user(session=session, name=name, actor=CLI_ACTOR))
    echo(f"Disabled {name}; their sessions have ended.")


@users_app.command("passwd")
def users_passwd(name: str, password_stdin: PasswordStdinOption = False) -> None:
    """Set a user's password (e.g. the first admin's); their sessions end."""
    password = _read_password(password_stdin, prompt="New password")
    _as_admin(
        lambda session: set_password(session=session, name=name, password=password, actor=CLI_ACTOR)
    )
    echo(f"Changed the password of {name}; their sessions have ended.")


@users_app.command("reset")
def users_reset(name: str) -> None:
    """Print a one-time password for a user; they must change it at their next login."""
    password = _as_admin(
        lambda session: reset_password(session=session, name=name, actor=CLI_ACTOR)
    )
    echo(f"One-time password for {name}: {password}")
    echo("It is shown only now; they must choose a new one when they log in.")


@users_app.command("enable")
def users_enable(name: str) -> None:
    """Re-enable a disabled user, with the password they had."""
    _as_admin(lambda session: enable_user(session=session, name=name, actor=CLI_ACTOR))
    echo(f"Enabled {name}.")


@users_app.command("role")
def users_role(
    name: str, role: Annotated[Role, typer.Argument(help="viewer, moderator or admin.")]
) -> None:
    """Change a user's role; their sessions end so it applies at once."""
    _as_admin(lambda session: set_role(session=session, name=name, role=role, actor=CLI_ACTOR))
    echo(f"{name} is now a {role}; their sessions have ended.")


@users_app.command("totp-off")
def users_totp_off(name: str) -> None:
    """Turn off a user's two-factor login (a lost phone); their sessions end."""
    _as_admin(lambda session: disable_totp(session=session, name=name, actor=CLI_ACTOR))
    echo(f"Two-factor login is off for {name}; their sessions have ended.")


@users_app.command("unlock")
def users_unlock(name: str) -> None:
    """Forget a user's failed logins, so their next login is not delayed."""
    forgotten = _as_admin(
        lambda session: unlock_logins(session=session, name=name, actor=CLI_ACTOR)
    )
    echo(f"Forgot {forgotten} failed login(s) of {name}.")


def _positions(values: list[str], option: str) -> dict[int, str]:
    """``N=TEXT`` (or just ``N``) options as 1-based position -> text."""
    parsed: dict[int, str] = {}
    for value in values:
        number, _, text = value.partition("=")
        if not number.strip().isdigit() or int(number) < 1:
            raise UserError(f"{option} {value[:40]!r}: start with the attachment's number, e.g. 1")
        parsed[int(number)] = text
    return parsed


def _decide_all(
    action: str,
    ids: list[str],
    actor: str,
    reason: str | None,
    *,
    alt: list[str] | None = None,
    decorative: list[str] | None = None,
    media_seen: bool = False,
    ack_flags: bool = False,
    consent: str | None = None,
    campaign: str | None = None,
) -> None:
    """Decide every post in one transaction, in ``campaign`` (None: the default one): one
    refusal and nothing changes."""
    settings = load()
    engine = open_engine(settings)
    alt_by_position = _positions(alt or [], "--alt")
    decorative_positions = set(_positions(decorative or [], "--decorative"))
    with session_scope(engine) as session:
        post_ids = [find_post(session, ref).id or 0 for ref in ids]
    if action == "approve":
        # What approval publishes is fetched first, outside the decision's transaction.
        for post_id in post_ids:
            stage_post(engine=engine, settings=settings, post_id=post_id, retry=True)
    with session_scope(engine) as session:
        chosen = get_campaign(session, settings, campaign)
        for ref in ids:
            post = find_post(session, ref)
            media = session.exec(select(MediaItem).where(MediaItem.post_id == post.id)).all()
            by_position = {item.position + 1: item.id for item in media if item.id is not None}
            if consent is not None:
                record_consent(
                    session=session,
                    post=post,
                    actor=actor,
                    how=consent,
                    obtained_on=datetime.now(settings.zone).date(),
                )
            try:
                result = decide(
                    session=session,
                    post=post,
                    action=action,
                    actor=actor,
                    reason=reason,
                    settings=settings,
                    alt_texts={
                        by_position[n]: text
                        for n, text in alt_by_position.items()
                        if n in by_position
                    },
                    decorative={by_position[n] for n in decorative_positions if n in by_position},
                    media_seen=media_seen,
                    acknowledged_flags=flag_reasons(post) if ack_flags else (),
                    campaign=chosen,
                )
            except CloserLookNeeded as exc:
                hint = f" (pass {exc.cli_option})" if exc.cli_option else ""
                hint = hint or (f" ({exc.cli_hint})" if exc.cli_hint else "")
                raise UserError(f"{exc}{hint}; nothing was changed") from None
            echo(f"{ref}: {result.from_status} -> {result.to_status}")


IdsArgument = Annotated[list[str], typer.Argument(help="Posts as platform:external_id.")]
AsOption = Annotated[str, typer.Option("--as", help="The moderator deciding.")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why (kept in the audit).")]


@moderate_app.command("approve")
def moderate_approve(
    ids: IdsArgument,
    as_user: AsOption,
    reason: ReasonOption = None,
    alt: Annotated[
        list[str] | None,
        typer.Option("--alt", help="N=TEXT: alt text for attachment N (1-based); repeatable."),
    ] = None,
    decorative: Annotated[
        list[str] | None,
        typer.Option("--decorative", help="N: attachment N needs no alt text; repeatable."),
    ] = None,
    media_seen: Annotated[
        bool,
        typer.Option("--media-seen", help="You looked at the hidden (sensitive or flagged) media."),
    ] = False,
    ack_flags: Annotated[
        bool, typer.Option("--ack-flags", help="You checked every reason the post is flagged.")
    ] = False,
    consent: Annotated[
        str | None,
        typer.Option(
            "--consent",
            help="How the author's consent was obtained (recorded today, for the gallery).",
        ),
    ] = None,
    campaign: CampaignOption = None,
) -> None:
    """Approve posts as a moderator: same rules and audit as the web queue."""
    _decide_all(
        "approve",
        ids,
        as_user,
        reason,
        alt=alt,
        decorative=decorative,
        media_seen=media_seen,
        ack_flags=ack_flags,
        consent=consent,
        campaign=campaign,
    )


@moderate_app.command("reject")
def moderate_reject(
    ids: IdsArgument,
    as_user: AsOption,
    reason: Annotated[str, typer.Option("--reason", help="Why (required; kept in the audit).")],
    campaign: CampaignOption = None,
) -> None:
    """Reject posts as a moderator; a reason is required, as in the web queue."""
    if not reason.strip():
        raise UserError("--reason: say why the posts are rejected")
    _decide_all("reject", ids, as_user, reason, campaign=campaign)


def _posts_in(
    session: Session, settings: Settings, ids: list[str], actor: str, campaign: str | None,
    doing: str,
) -> list[Post]:  # fmt: skip
    """The posts named, as ``actor`` moderates them in ``campaign`` (None: the default
    one): a UserError, and nothing done, for an actor who does not or a post not in it."""
    chosen = get_campaign(session, settings, campaign)
    moderator_in(session, actor=actor, campaign=chosen, doing=doing)
    posts = [find_post(session, ref) for ref in ids]
    for post in posts:
        status_in_campaign(session, post, chosen)
    return posts


@moderate_app.command("blur-faces")
def moderate_blur_faces(
    ids: IdsArgument, as_user: AsOption, campaign: CampaignOption = None
) -> None:
    """Publish with faces blurred: replace each post's stored copies by ones blurred at the
    faces the image check found. Look at the blurred copy in the queue, then approve."""
    settings = load()
    engine = open_engine(settings)
    with session_scope(engine) as session:
        posts = _posts_in(session, settings, ids, as_user, campaign, "blur faces")
        post_ids = [post.id or 0 for post in posts]
    for ref, post_id in zip(ids, post_ids, strict=True):
        count = blur_faces(engine=engine, settings=settings, post_id=post_id, actor=as_user)
        echo(f"{ref}: faces blurred in {count} image(s); look at it in the queue, then approve")


@moderate_app.command("escalate")
def moderate_escalate(
    ids: IdsArgument, as_user: AsOption, reason: EscalateReason, campaign: CampaignOption = None
) -> None:
    """Escalate posts to the safeguarding lead: off every public route for good, and the
    SAFEGUARDING_ALERT_TO contacts are told."""
    settings = load()
    engine = open_engine(settings)
    with session_scope(engine) as session:
        posts = _posts_in(session, settings, ids, as_user, campaign, "escalate")
        for ref, post in zip(ids, posts, strict=True):
            escalate(session=session, settings=settings, post=post, actor=as_user, reason=reason)
            echo(f"{ref}: escalated to the safeguarding lead")
    # The command is the request here: send now, not from a thread the exit would cut.
    send_pending_alerts(engine=engine, settings=settings)


EscalateReason = Annotated[
    str, typer.Option("--reason", help="What the safeguarding lead needs to know.")
]


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(moderate_app, name="moderate")
