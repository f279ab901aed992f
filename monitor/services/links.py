"""Where a post's links lead, shown to the moderator as host names.

The gallery publishes the post's link, the author's link and the links in the
text. A moderator approving "Original post" must see where each one goes: a
hijacker can point a harmless-looking post at any site. A link whose host is
neither the post's platform nor the post's own origin is marked foreign, and
ingestion flags such posts (:func:`foreign_link_reason`, used by
:mod:`monitor.services.ingest`).
"""

from __future__ import annotations

import dataclasses
import html
import re
from urllib.parse import urlsplit

from monitor.models import Post

_ANCHOR_RE = re.compile(
    r"""<a\s[^>]*?href\s*=\s*["']([^"']+)["'][^>]*>(.*?)</a>""", re.IGNORECASE | re.DOTALL
)
_TAG_RE = re.compile(r"<[^>]+>")
#: Links read from one post's HTML at most; a post is short, a hostile one need not be.
MAX_TEXT_LINKS = 20


@dataclasses.dataclass(frozen=True, slots=True)
class LinkHost:
    """One published link: what it is, the host it leads to, and whether that is foreign."""

    label: str
    host: str
    foreign: bool


def host_of(url: str | None) -> str | None:
    """The lower-case host of an http(s) URL, without ``www.``; None for anything else."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    return host.removeprefix("www.")


def _same_site(host: str, home: str) -> bool:
    """``cdn.example.org`` belongs with ``example.org``, and the other way round."""
    return host == home or host.endswith("." + home) or home.endswith("." + host)


def text_links(post_html: str) -> list[str]:
    """The targets of the links in a post's (already sanitised) HTML.

    Mentions (``@name``) and hashtags (``#tag``) are the platform's own navigation,
    often to another server of the same network, not links the author chose.
    """
    links = []
    for href, inner in _ANCHOR_RE.findall(post_html)[:MAX_TEXT_LINKS]:
        text = html.unescape(_TAG_RE.sub("", inner)).strip()
        if not text.startswith(("@", "#")):
            links.append(html.unescape(href))
    return links


def link_hosts(post: Post) -> list[LinkHost]:
    """Every link the gallery would publish for ``post``, with its host."""
    return published_link_hosts(post.url, post.author_url, post.html)


def published_link_hosts(url: str, author_url: str | None, post_html: str) -> list[LinkHost]:
    """The hosts of a post's link, its author's link and the links in its text."""
    home = host_of(url)
    found: list[LinkHost] = []
    seen: set[tuple[str, str]] = set()
    candidates: list[tuple[str, str | None]] = [("Post", url), ("Author", author_url)]
    candidates += [("Link in text", link) for link in text_links(post_html)]
    for label, link in candidates:
        host = host_of(link)
        if host is None or (label, host) in seen:
            continue
        seen.add((label, host))
        found.append(LinkHost(label, host, foreign=home is None or not _same_site(host, home)))
    return found


def foreign_link_reason(url: str, author_url: str | None, post_html: str) -> str | None:
    """The flag for links to another site than the post's own, or None."""
    links = published_link_hosts(url, author_url, post_html)
    foreign = [link.host for link in links if link.foreign]
    if not foreign:
        return None
    return f"{FOREIGN_LINK_PREFIX} {', '.join(dict.fromkeys(foreign))}"


FOREIGN_LINK_PREFIX = "Links to another site than the post's own:"
