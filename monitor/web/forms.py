"""The queue's forms and filters as FastAPI form and query models.

Each model names the fields a page sends, so the route reads typed attributes
and the OpenAPI description (which the fuzz test walks) lists every field.
The fields are as forgiving as the hand-parsing they replace: a missing or
malformed value becomes its default (an empty text, no row id) and the route
answers it in words, never with a validation error; a long value is cut to
its limit, never refused.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from monitor.services.consent import MAX_CONSENT_CHARS
from monitor.web.deps import parse_row_id

SHORT_CHARS = 200
LONG_CHARS = 2000


def _clipped(limit: int) -> AfterValidator:
    """Strip the value and cut it to ``limit`` characters (a long field is never refused)."""

    def clip(value: str) -> str:
        return value.strip()[:limit]

    return AfterValidator(clip)


def _row_id(value: Any) -> int | None:
    return parse_row_id(value.strip()[:SHORT_CHARS]) if isinstance(value, str) else None


#: A short form field (an action, a reason's choice), stripped.
Short = Annotated[str, _clipped(SHORT_CHARS)]
#: A free-text form field (a note, the page to return to), stripped.
Long = Annotated[str, _clipped(LONG_CHARS)]
#: A database row id, or None when the field is missing or not one.
RowId = Annotated[int | None, BeforeValidator(_row_id)]


class _Fields(BaseModel):
    """Fields the model does not name (the CSRF token among them) are left to others."""

    model_config = ConfigDict(extra="ignore")


class _Form(_Fields):
    """A form that sends the moderator back to the page it came from."""

    return_to: Long = ""


class DecisionForm(_Form):
    """One approve or reject from a card: the version seen, the reason, the image edits.

    Alt text arrives as one ``alt_<media id>`` field per image, so those are the
    model's extra fields (:meth:`alt_texts`).
    """

    model_config = ConfigDict(extra="allow")

    post_id: RowId = None
    version: RowId = None
    action: Short = ""
    reason_choice: Short = ""
    reason_note: Long = ""
    decorative: list[str] = []
    ack_flag: list[str] = []

    def alt_texts(self) -> dict[int, str]:
        """Media id -> the alt text the moderator left in its field (empty clears it)."""
        return {
            media_id: value
            for key, value in (self.model_extra or {}).items()
            if key.startswith("alt_")
            and isinstance(value, str)
            and (media_id := parse_row_id(key.removeprefix("alt_"))) is not None
        }

    def decorative_ids(self) -> set[int]:
        return {
            media_id for value in self.decorative if (media_id := parse_row_id(value)) is not None
        }


class BulkForm(_Form):
    """A decision on every selected post; each selection is ``id:version``."""

    action: Short = ""
    reason_choice: Short = ""
    reason_note: Long = ""
    selected: list[str] = []


class PostForm(_Form):
    """A card's form that names only its post (reveal the hidden media)."""

    post_id: RowId = None


class UndoForm(_Form):
    event_id: RowId = None


class CampaignChoiceForm(_Form):
    """The queue's campaign switcher: the slug of the campaign to work on."""

    campaign: Annotated[str, _clipped(60)] = ""


class ConsentForm(PostForm):
    obtained_on: Annotated[str, _clipped(20)] = ""
    how: Annotated[str, _clipped(MAX_CONSENT_CHARS)] = ""
    covers: Annotated[str, _clipped(MAX_CONSENT_CHARS)] = ""


class QueueQuery(BaseModel):
    """The queue page's tab, filters, order and page cursor, as the URL carries them
    (the route cuts each to its limit and says what it could not use)."""

    model_config = ConfigDict(extra="ignore")

    tab: str = ""
    platform: str = ""
    tag: str = ""
    author: str = ""
    since: str = ""
    until: str = ""
    q: str = ""
    order: str = ""
    after: str | None = None


class QueueLiveQuery(QueueQuery):
    """What an open queue page sends when it asks what changed: the posts it shows
    (``id:version,...``) and, when it shows the end of its tab, where that end is."""

    shown: str = ""
    tail: str = ""


class BulkMatchingForm(QueueQuery):
    """A bulk rejection of what the queue's filters match: the filters as posted, the
    reason, and ``up_to`` (the newest post id shown) once the moderator confirmed."""

    reason_choice: Short = ""
    reason_note: Long = ""
    up_to: Short = ""


class TakedownReviewForm(_Form):
    """Keep a reported post published, or take it down, with a note."""

    outcome: Short = ""
    note: Long = ""


class EscalationForm(_Form):
    reason: Long = ""


class CloseEscalationForm(_Fields):
    outcome: Long = ""


class GallerySwitchForm(_Form):
    """The kill switch from the queue: ``pause`` or ``resume``, and why."""

    state: Short = ""
    reason: Annotated[str, _clipped(500)] = ""


class QueueRuleForm(_Form):
    """A blocked word or author from the queue: ``preview`` first, then ``apply``."""

    kind: Short = ""
    pattern: Annotated[str, _clipped(300)] = ""
    rule_action: Short = ""
    step: Short = ""
