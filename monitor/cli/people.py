"""``users`` and ``moderate``: accounts, and decisions from a script."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from monitor.cli._common import CLI_ACTOR, echo, load, open_engine
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import Role
from monitor.services.moderation import decide, find_post
from monitor.services.users import add_user, disable_user, list_users

users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
moderate_app = typer.Typer(help="Decide on posts from a script.", no_args_is_help=True)


def _read_password(from_stdin: bool, prompt: str = "Password") -> str:
    """A new password from stdin, or asked for twice on a terminal (never echoed)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UserError("no terminal to ask for the password: pipe it in with --password-stdin")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[Role, typer.Option("--role", help="viewer, moderator or admin.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a user; the password is read from stdin or asked for."""
    password = _read_password(password_stdin)
    engine = open_engine(load())
    with session_scope(engine) as session:
        add_user(session=session, name=name, role=role.value, password=password, actor=CLI_ACTOR)
    echo(f"Added {name} as {role.value}.")


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
    engine = open_engine(load())
    with session_scope(engine) as session:
        disable_user(session=session, name=name, actor=CLI_ACTOR)
    echo(f"Disabled {name}.")


def _decide_all(action: str, ids: list[str], actor: str, reason: str | None) -> None:
    settings = load()
    engine = open_engine(settings)
    with session_scope(engine) as session:
        posts = [find_post(session, ref) for ref in ids]
        for ref, post in zip(ids, posts, strict=True):
            result = decide(
                session=session,
                post=post,
                action=action,
                actor=actor,
                reason=reason,
                settings=settings,
            )
            echo(f"{ref}: {result.from_status} -> {result.to_status}")


IdsArgument = Annotated[list[str], typer.Argument(help="Posts as platform:external_id.")]
AsOption = Annotated[str, typer.Option("--as", help="The moderator deciding.")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why (kept in the audit).")]


@moderate_app.command("approve")
def moderate_approve(ids: IdsArgument, as_user: AsOption, reason: ReasonOption = None) -> None:
    """Approve posts as a moderator: same rules and audit as the web queue."""
    _decide_all("approve", ids, as_user, reason)


@moderate_app.command("reject")
def moderate_reject(ids: IdsArgument, as_user: AsOption, reason: ReasonOption = None) -> None:
    """Reject posts as a moderator, with an optional reason."""
    _decide_all("reject", ids, as_user, reason)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(moderate_app, name="moderate")
