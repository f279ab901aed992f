"""A news site publishing an RSS 2.0 feed (and an Atom one), as RSS 2.0 and RFC 9110 describe.

``GET /news/rss.xml`` renders the channel of ``tests/fixtures/rss/rss2.xml``
with the items the test added, newest first, and answers ``ETag`` and
``Last-Modified``; a request whose ``If-None-Match`` (or ``If-Modified-Since``)
still matches gets a bodiless 304. ``/blog/atom.xml`` serves the Atom fixture,
``/news`` the site's HTML page (no feed), ``/old-feed`` a 301 to the feed.
"""

from __future__ import annotations

import email.utils
import hashlib
import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.fakes.server import FakeRequest, FakeServer, Reply

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rss"
MEDIA_NS = "http://search.yahoo.com/mrss/"
FEED_PATH = "/news/rss.xml"
ET.register_namespace("media", MEDIA_NS)
ET.register_namespace("dc", "http://purl.org/dc/elements/1.1/")
ET.register_namespace("atom", "http://www.w3.org/2005/Atom")


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


class FakeFeed:
    """A feed of items; ``add`` publishes one, ``edit`` and ``drop`` change the feed."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.items: list[dict[str, Any]] = []
        #: False makes the server ignore conditional requests, as many do.
        self.conditional = True
        self._numbers = itertools.count(1)
        self.clock = datetime.now(UTC) - timedelta(hours=24)
        self.modified = self.clock
        server.route("GET", FEED_PATH, self._feed)
        server.route("GET", r"/blog/atom\.xml", self._static("atom.xml", "application/atom+xml"))
        server.route("GET", r"/news", self._static("not_a_feed.html", "text/html; charset=utf-8"))
        server.route("GET", r"/old-feed", self._moved)

    @property
    def url(self) -> str:
        return f"{self.server.url}{FEED_PATH}"

    def add(
        self,
        title: str = "Officers visit schools for #CEADAY21",
        description: str = "<p>Talking to pupils about exploitation.</p>",
        *,
        published: datetime | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Publish an item; fields may set guid, link, categories, enclosures, media, ..."""
        number = next(self._numbers)
        self.clock = published or self.clock + timedelta(minutes=1)
        item: dict[str, Any] = {
            "title": title,
            "link": f"https://www.example-police.uk/news/{number}",
            "guid": f"https://www.example-police.uk/news/{number}",
            "pubDate": email.utils.format_datetime(self.clock, usegmt=True),
            "description": description,
            "categories": [],
            "enclosures": [],
            **fields,
        }
        self.items.insert(0, item)
        self.modified = datetime.now(UTC)
        return item

    def edit(self, item: dict[str, Any], **fields: Any) -> None:
        item.update(fields)
        self.modified = datetime.now(UTC)

    def drop(self, item: dict[str, Any]) -> None:
        """The item rolls off the feed, as older items do."""
        self.items.remove(item)
        self.modified = datetime.now(UTC)

    def render(self) -> bytes:
        """The fixture's channel with the current items in place of its examples."""
        root = ET.fromstring(fixture_bytes("rss2.xml"))
        channel = root.find("channel")
        assert channel is not None
        for old in channel.findall("item"):
            channel.remove(old)
        for item in self.items:
            channel.append(_item_element(item))
        return ET.tostring(root, encoding="utf-8", xml_declaration=True)

    def _feed(self, request: FakeRequest) -> Reply:
        body = self.render()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        last_modified = email.utils.format_datetime(self.modified, usegmt=True)
        headers = {"Content-Type": "application/rss+xml; charset=utf-8"}
        if self.conditional:
            headers.update({"ETag": etag, "Last-Modified": last_modified})
            if request.headers.get("if-none-match") == etag:
                return Reply(304, b"", headers)
            since = request.headers.get("if-modified-since")
            if since and "if-none-match" not in request.headers and since == last_modified:
                return Reply(304, b"", headers)
        return Reply(200, body, headers)

    @staticmethod
    def _static(name: str, content_type: str) -> Any:
        def serve(request: FakeRequest) -> Reply:
            return Reply(200, fixture_bytes(name), {"Content-Type": content_type})

        return serve

    def _moved(self, request: FakeRequest) -> Reply:
        return Reply(301, b"", {"Location": FEED_PATH})


def _item_element(item: dict[str, Any]) -> ET.Element:
    element = ET.Element("item")
    for tag in ("title", "link", "pubDate", "description", "author"):
        if item.get(tag) is not None:
            ET.SubElement(element, tag).text = str(item[tag])
    if item.get("guid") is not None:
        permalink = "true" if str(item["guid"]).startswith("http") else "false"
        ET.SubElement(element, "guid", isPermaLink=permalink).text = str(item["guid"])
    for category in item["categories"]:
        ET.SubElement(element, "category").text = category
    for url, mime in item["enclosures"]:
        ET.SubElement(element, "enclosure", url=url, length="1000", type=mime)
    for attributes in item.get("media_content", []):
        ET.SubElement(element, f"{{{MEDIA_NS}}}content", **attributes)
    for url in item.get("media_thumbnail", []):
        ET.SubElement(element, f"{{{MEDIA_NS}}}thumbnail", url=url)
    return element
