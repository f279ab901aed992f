"""How a campaign's public gallery and event screen look, and which posts lead them.

Admins choose a layout, three colours, a logo and the help message with its link;
they pin posts (shown first) and feature them (shown larger). Every choice is an
app setting, so it is on the audit record and every replica and every open wall
follows it (a change redraws the open walls).

Each campaign has its own (:func:`look_key`): the default campaign's are the install's
settings, as before campaigns, and a campaign whose admins have not chosen a look yet
shows the install's until they do. Pinned and featured posts are each campaign's own.

Colours are refused unless the result passes WCAG 2.2 AA: body text and links
4.5:1 against the background, and the white text of the header band and buttons
4.5:1 against the accent colour. A refusal names the pair and the ratio.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from sqlmodel import Session

from monitor.errors import UserError
from monitor.models import AppSetting, Campaign, Post, PostStatus
from monitor.services.app_settings import (
    campaign_key,
    every_campaigns,
    get_app_setting,
    set_app_setting,
)
from monitor.services.audit import find_post_id
from monitor.services.gallery import safe_url
from monitor.services.media import PINNED_NAME_RE
from monitor.services.placements import status_in

LOOK = "gallery_look"
PINNED = "gallery_pinned"
FEATURED = "gallery_featured"
LAYOUTS = ("grid", "masonry", "carousel", "list")
MAX_PINNED = 6
MAX_FEATURED = 50
MAX_HELP_CHARS = 300
MAX_LOGO_ALT_CHARS = 200
MAX_URL_CHARS = 500
#: WCAG 2.2 success criterion 1.4.3 (Contrast, minimum), level AA, normal-size text.
AA_TEXT_RATIO = 4.5
DEFAULT_HELP = "Worried about a child? Call 101, or 999 in an emergency."
WHITE = "#ffffff"
_COLOUR_RE = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


class LookRefused(UserError):
    """The look asked for is not accessible or not well formed; nothing was saved."""


@dataclasses.dataclass(frozen=True, slots=True)
class Look:
    layout: str = "grid"
    background: str = "#ffffff"
    text: str = "#1b1b1b"
    accent: str = "#0b3d6b"
    help_message: str = DEFAULT_HELP
    #: Where the screen's QR code and the gallery's help link go; None: the gallery itself.
    help_url: str | None = None
    #: The pinned file name of the logo (``<hash>-<width>.jpg``) and its alt text.
    logo: str | None = None
    logo_alt: str = ""

    def as_setting(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def normalise_colour(value: str) -> str:
    """``#rrggbb`` in lower case, or a refusal that says what a colour looks like."""
    match = _COLOUR_RE.fullmatch(value.strip())
    if match is None:
        raise LookRefused(f"{value.strip()[:20]!r} is not a colour: write it as #RRGGBB")
    digits = match[1].lower()
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    return "#" + digits


def relative_luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of an sRGB ``#rrggbb`` colour."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    """WCAG contrast ratio, from 1 (none) to 21 (black on white)."""
    a, b = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def check_contrast(*, background: str, text: str, accent: str) -> None:
    """Refuse colours below AA, naming the pair, its ratio and what is needed."""
    pairs = (
        ("text", text, "background", background),
        ("accent (links)", accent, "background", background),
        ("white header and button text", WHITE, "accent", accent),
    )
    for first_name, first, second_name, second in pairs:
        ratio = contrast_ratio(first, second)
        # Rounded down, so 4.49 is never shown as the 4.5 it fails to reach.
        if ratio < AA_TEXT_RATIO:
            shown = int(ratio * 100) / 100
            raise LookRefused(
                f"the {first_name} on the {second_name} has a contrast of {shown}:1;"
                f" WCAG 2.2 AA needs at least {AA_TEXT_RATIO}:1 (choose a darker or lighter colour)"
            )


def has_own_look(session: Session, campaign: Campaign | None) -> bool:
    """Has ``campaign`` a look of its own (else it shows the install's)?"""
    key = campaign_key(LOOK, campaign)
    return key == LOOK or get_app_setting(session, key, None) is not None


def load_look(session: Session, campaign: Campaign | None = None) -> Look:
    """The look of ``campaign``'s gallery (None: the default's), the install's while it
    has none of its own; a damaged or partial setting falls back field by field."""
    key = campaign_key(LOOK, campaign)
    stored = get_app_setting(session, key, None)
    if stored is None and key != LOOK:
        stored = get_app_setting(session, LOOK, None)
    if not isinstance(stored, dict):
        return Look()
    default = Look()
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Look):
        value = stored.get(field.name, getattr(default, field.name))
        values[field.name] = value if isinstance(value, str) or value is None else None
    try:
        look = Look(**values)
        if look.layout not in LAYOUTS:
            look = dataclasses.replace(look, layout=default.layout)
        colours = {
            name: normalise_colour(getattr(look, name)) for name in ("background", "text", "accent")
        }
        check_contrast(**colours)
        if look.logo is not None and not PINNED_NAME_RE.match(look.logo):
            look = dataclasses.replace(look, logo=None)
        return dataclasses.replace(look, **colours)
    except (LookRefused, TypeError):
        return default


def save_look(
    session: Session,
    *,
    campaign: Campaign | None = None,
    actor: str,
    layout: str,
    background: str,
    text: str,
    accent: str,
    help_message: str,
    help_url: str,
    logo: str | None,
    logo_alt: str,
    remove_logo: bool = False,
) -> str:
    """Check and store a new look for ``campaign``'s gallery (audited); raises
    :class:`LookRefused` with the reason."""
    if layout not in LAYOUTS:
        raise LookRefused("choose a layout: " + ", ".join(LAYOUTS))
    colours = {
        "background": normalise_colour(background),
        "text": normalise_colour(text),
        "accent": normalise_colour(accent),
    }
    check_contrast(**colours)
    message = " ".join(help_message.split())
    if len(message) > MAX_HELP_CHARS:
        raise LookRefused(f"keep the help message under {MAX_HELP_CHARS} characters")
    link = help_url.strip()
    if link and (len(link) > MAX_URL_CHARS or safe_url(link) is None):
        raise LookRefused("the help page must be an http:// or https:// address")
    current = load_look(session, campaign)
    kept_logo = None if remove_logo else (logo or current.logo)
    alt = " ".join(logo_alt.split())[:MAX_LOGO_ALT_CHARS] or (
        current.logo_alt if kept_logo and not logo else ""
    )
    if kept_logo and not alt:
        raise LookRefused("describe the logo (its alt text, e.g. the organisation's name)")
    look = Look(
        layout=layout,
        help_message=message,
        help_url=link or None,
        logo=kept_logo,
        logo_alt=alt if kept_logo else "",
        **colours,
    )
    if look == current and has_own_look(session, campaign):
        return "The gallery's look was already so."
    key = campaign_key(LOOK, campaign)
    set_app_setting(session, key, look.as_setting(), actor=actor, campaign_id=_id_of(campaign))
    return "Saved the gallery's look."


def is_current_logo(session: Session, name: str) -> bool:
    """Is ``name`` the logo of some campaign's gallery now (the install's look included)?
    Logos are public and served from one path, whichever gallery shows them."""
    looks = every_campaigns(session, LOOK)
    return any(isinstance(value, dict) and value.get("logo") == name for _, value in looks)


def _id_of(campaign: Campaign | None) -> int | None:
    return None if campaign is None else campaign.id


def pinned_ids(session: Session, campaign: Campaign | None = None) -> list[int]:
    """The posts pinned first on ``campaign``'s gallery (None: the default's)."""
    return _id_list(session, campaign_key(PINNED, campaign))


def featured_ids(session: Session, campaign: Campaign | None = None) -> list[int]:
    """The posts shown larger on ``campaign``'s gallery (None: the default's)."""
    return _id_list(session, campaign_key(FEATURED, campaign))


def featured_anywhere(session: Session) -> set[int]:
    """The posts featured on any campaign's gallery: a live card is drawn once for every
    wall it goes to, so it is drawn large if a gallery it is on features it."""
    lists = every_campaigns(session, FEATURED)
    return {post_id for _, value in lists for post_id in _valid_ids(value)}


def _id_list(session: Session, key: str) -> list[int]:
    return _valid_ids(get_app_setting(session, key, []))


def _valid_ids(value: Any) -> list[int]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, int) and not isinstance(v, bool) and v > 0]


def curate(
    session: Session, *, actor: str, ref: str, action: str, campaign: Campaign | None = None
) -> str:
    """Pin, unpin, feature or unfeature one post named ``platform:external_id`` on
    ``campaign``'s gallery (None: the default's), where it must be approved."""
    actions = {"pin": (PINNED, True), "unpin": (PINNED, False)}
    actions |= {"feature": (FEATURED, True), "unfeature": (FEATURED, False)}
    if action not in actions:
        raise UserError("choose pin, unpin, feature or unfeature")
    base, add = actions[action]
    done = "pinned" if base == PINNED else "featured"
    key = campaign_key(base, campaign)
    post_id = find_post_id(session, ref[:600])
    post = session.get(Post, post_id) if post_id else None
    if post is None:
        raise UserError(f"no post {ref.strip()[:100]!r} (give it as platform:id)")
    ids = _id_list(session, key)
    if add:
        if campaign is None or key == base:
            status: PostStatus | None = post.status
        else:
            status = status_in(session, post, campaign.id or 0)
        if status != PostStatus.APPROVED:
            raise UserError("only a post approved on this gallery can be pinned or featured")
        if post_id in ids:
            return f"{ref} was already {done}."
        limit = MAX_PINNED if base == PINNED else MAX_FEATURED
        if len(ids) >= limit:
            raise UserError(f"at most {limit} posts can be {done} at once")
        ids.append(post_id)
    else:
        if post_id not in ids:
            return f"{ref} was not {done}."
        ids.remove(post_id)
    set_app_setting(session, key, ids, actor=actor, campaign_id=_id_of(campaign))
    verb = {"pin": "Pinned", "unpin": "Unpinned", "feature": "Featured", "unfeature": "Unfeatured"}
    return f"{verb[action]} {ref}."


def looks_stamp(session: Session, campaign: Campaign | None = None) -> str:
    """Changes whenever the look, the pins or the featured posts of ``campaign``'s gallery
    (or the install's look it shows) change (for ETags)."""
    parts = []
    keys = {LOOK, *(campaign_key(base, campaign) for base in (LOOK, PINNED, FEATURED))}
    for key in sorted(keys):
        row = session.get(AppSetting, key)
        parts.append(row.updated_at.isoformat() if row is not None else "-")
    return "|".join(parts)
