"""Logging set-up: one event per line, as text or JSON (``LOG_FORMAT``)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy.engine import make_url

from monitor.config import Settings


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            event["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False)


#: Configuration keys whose values are secrets, by the end of their name.
_SECRET_SUFFIXES = ("TOKEN", "PASSWORD", "SECRET", "SECRET_KEY", "API_KEY", "APP_PASSWORD")
_MIN_SECRET_LENGTH = 6


class RedactSecrets(logging.Filter):
    """Replace every configured secret with *** in every log line, whoever logs it.

    Error bodies from platforms, driver messages and URLs can echo a token back;
    redacting at the handler catches them all.
    """

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted(
            {s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info:
            # Formatters reuse exc_text, so the traceback is redacted once, here.
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        return True

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def configured_secrets(settings: Settings) -> list[str]:
    """Every secret value in the configuration: passwords, tokens, keys, the DB password.

    Adapters declare theirs (``secret_keys``, from their settings model); the
    service's own keys are known by the end of their name.
    """
    declared = _declared_secret_keys()
    found = [
        value
        for key, value in settings.raw.items()
        if (key.endswith(_SECRET_SUFFIXES) or key in declared) and value
    ]
    password = make_url(settings.database_url).password
    return [*found, *([password] if password else [])]


def _declared_secret_keys() -> set[str]:
    from adapters import available_adapters, get_adapter

    keys: set[str] = set()
    for name in available_adapters():
        try:
            keys.update(get_adapter(name).secret_keys)
        except Exception:  # noqa: BLE001  a plugin that cannot load declares nothing
            continue
    return keys


class _CurrentStderr(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time, not the one at set-up.

    Tools and test runners swap ``sys.stderr``; a handler holding the old one
    would write to a closed file.
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        """The stream is always the current stderr."""


def configure_logging(settings: Settings) -> None:
    """Send logs to stderr in the configured format: ours at ``LOG_LEVEL``, libraries'
    warnings and errors only (their INFO chatter is not the operator's business)."""
    handler = _CurrentStderr()
    handler.addFilter(RedactSecrets(configured_secrets(settings)))
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
    logging.getLogger("monitor").setLevel(settings.log_level)
