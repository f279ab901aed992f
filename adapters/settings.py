"""Each adapter's settings, declared once as a typed model, and everything derived from it.

An adapter sets ``settings_model`` to a subclass of :class:`AdapterSettings`
with one field per configuration key (the field name is the key in lower
case): its type, its default, whether it is secret (``SecretStr``) and
whether it is required (no default). From that declaration come the keys the
registry hands the adapter (and no others: a plugin never sees
``SMTP_PASSWORD``), the ``.env.example`` lines, the Sources page's
"credentials present" column, the values log redaction blanks out, and the
one-line ``KEY: message`` error when a value is malformed. The adapter reads
its values from the parsed model (``self.settings``), so a check of a value
(a base URL, a numeric id) is a validator on its field, declared once.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Self

import pydantic

from adapters.base import ConfigError, http_base


class AdapterSettings(pydantic.BaseModel):
    """Base of an adapter's declared settings; values come from the environment and ``.env``."""

    model_config = pydantic.ConfigDict(
        frozen=True, extra="ignore", alias_generator=str.upper, str_strip_whitespace=True
    )

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Every key, as written in ``.env``."""
        return tuple(name.upper() for name in cls.model_fields)

    @classmethod
    def required_keys(cls) -> tuple[str, ...]:
        """Keys without a default: the adapter is on by default once they are all set."""
        return tuple(name.upper() for name, f in cls.model_fields.items() if f.is_required())

    @classmethod
    def secret_keys(cls) -> tuple[str, ...]:
        """Keys typed ``SecretStr``: never shown, and blanked out of every log line."""
        return tuple(
            name.upper()
            for name, f in cls.model_fields.items()
            if pydantic.SecretStr in _types_of(f.annotation)
        )

    @classmethod
    def defaults(cls) -> dict[str, str]:
        """The ``.env.example`` value of each key: its default, or empty."""
        values: dict[str, str] = {}
        for name, f in cls.model_fields.items():
            default = None if f.is_required() else f.get_default(call_default_factory=True)
            if isinstance(default, bool):
                values[name.upper()] = "true" if default else "false"
            else:
                values[name.upper()] = "" if default is None else str(default)
        return values

    @classmethod
    def own(cls, raw: Mapping[str, str]) -> dict[str, str]:
        """Only this adapter's keys from the whole configuration, empty values left out."""
        return {key: raw[key] for key in cls.keys() if raw.get(key, "").strip()}

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> Self:
        """The typed settings, or a one-line ``KEY: message`` ConfigError."""
        try:
            return cls.model_validate(cls.own(raw))
        except pydantic.ValidationError as exc:
            error = exc.errors()[0]
            key = str(error["loc"][0]).upper() if error["loc"] else cls.__name__
            message = "is required" if error["type"] == "missing" else error["msg"]
            # A validator's own wording, without pydantic's prefix.
            message = message.removeprefix("Value error, ")
            raise ConfigError(f"{key}: {message}") from None


#: An API base URL setting: http(s) with a host, kept without its trailing slash.
BaseUrl = Annotated[str, pydantic.AfterValidator(http_base)]


def _types_of(annotation: object) -> tuple[object, ...]:
    """The types an annotation allows (``SecretStr | None`` gives both)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def env_example(model: type[AdapterSettings]) -> str:
    """The ``.env.example`` lines of a declaration: each key with its default, secrets empty.

    A plugin writes its own file from this (the project's lists the built-ins);
    :func:`env_example_problems` then keeps the two in step.
    """
    secret, required = set(model.secret_keys()), set(model.required_keys())
    lines = [f"# {model.__doc__.strip().splitlines()[0]}"] if model.__doc__ else []
    for key, default in model.defaults().items():
        note = [
            word for word, on in (("secret", key in secret), ("required", key in required)) if on
        ]
        if note:
            lines.append(f"# {key}: {', '.join(note)}")
        lines.append(f"{key}={default}")
    return "\n".join(lines) + "\n"


def env_example_problems(example: str, model: type[AdapterSettings]) -> list[str]:
    """Where an ``.env.example`` text and a declaration disagree, one line each.

    Every declared key must be listed (``KEY=value`` or ``# KEY=value``) with
    its declared default, and a secret or required key with no value. The
    project's test runs it for every built-in; a plugin runs it on its own file.
    """
    listed = dict(_EXAMPLE_LINE.findall(example))
    problems: list[str] = []
    for key, default in model.defaults().items():
        if key not in listed:
            problems.append(f"{key}: declared but not in .env.example")
        elif listed[key].strip() != default:
            problems.append(f"{key}: .env.example says {listed[key]!r}, the default is {default!r}")
    return problems


_EXAMPLE_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", re.M)
