"""Every token the product signs, in one place: one key, one salt per use.

``SECRET_KEY`` signs four things we hand out and later take back: the session
cookie, the login form's anti-forgery field, the public gallery's page cursor
and the takedown form's token. Each :class:`Use` is its own salt, so a token
minted for one use never verifies as another (a gallery cursor, which anyone
can read off a public page, is not a login form token). Uses that expire carry
the time they were signed, and :func:`unsign` refuses them past ``max_age``.

The HMAC and its encoding are itsdangerous's (SHA-256); callers turn
:class:`BadToken` into their own one-line message for people.
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from enum import StrEnum

from itsdangerous import BadData, SignatureExpired, Signer, TimestampSigner

from monitor.errors import MonitorError

#: Longer than any token we issue: anything bigger is refused before any HMAC is computed.
MAX_TOKEN_CHARS = 1000


class Use(StrEnum):
    """What a token is for; the value is its salt, so never change one that is in use."""

    SESSION = "session-cookie"
    LOGIN_FORM = "login-form"
    GALLERY_CURSOR = "gallery-cursor"
    TAKEDOWN_FORM = "takedown-form"


#: Uses whose tokens carry their signing time, so that they can expire.
TIMED_USES = frozenset({Use.LOGIN_FORM, Use.TAKEDOWN_FORM})


class BadToken(MonitorError):
    """A token we did not sign for this use, was edited, or (``expired``) is too old."""

    def __init__(self, use: Use, *, expired: bool = False) -> None:
        super().__init__(f"the {use.value} token has expired" if expired else f"bad {use.value}")
        self.use = use
        self.expired = expired


class _ClockedSigner(TimestampSigner):
    """itsdangerous's timestamp signer with a clock that tests can set."""

    def __init__(self, secret: str, *, salt: str, now: float | None) -> None:
        super().__init__(secret, salt=salt, digest_method=hashlib.sha256)
        self._now = now

    def get_timestamp(self) -> int:
        return int(time.time() if self._now is None else self._now)


def _signer(use: Use, secret: str, now: float | None) -> Signer:
    if use in TIMED_USES:
        return _ClockedSigner(secret, salt=use.value, now=now)
    return Signer(secret, salt=use.value, digest_method=hashlib.sha256)


def sign(use: Use, value: str, *, secret: str, now: float | None = None) -> str:
    """``value`` with a signature for ``use`` (and, for a timed use, the time)."""
    return _signer(use, secret, now).sign(value).decode()


def unsign(
    use: Use,
    token: str,
    *,
    secret: str,
    max_age: timedelta | None = None,
    now: float | None = None,
) -> str:
    """The value inside a token we signed for ``use``; raises :class:`BadToken` otherwise.

    A timed use must say how old its tokens may be, so none lives for ever by accident.
    """
    if (use in TIMED_USES) != (max_age is not None):
        raise TypeError(f"max_age is required for, and only for, timed uses (not {use.value})")
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise BadToken(use)
    signer = _signer(use, secret, now)
    try:
        if isinstance(signer, TimestampSigner) and max_age is not None:
            value = signer.unsign(token, max_age=int(max_age.total_seconds()))
        else:
            value = signer.unsign(token)
    except SignatureExpired:
        raise BadToken(use, expired=True) from None
    except (BadData, UnicodeEncodeError):  # the latter: lone surrogates from a URL
        raise BadToken(use) from None
    return value.decode()  # we only ever sign text
