"""What the demo serves under ``/demo`` beside the product: the sample's images, a stand-in
for each "original post" link, and the digest as partners would receive it.

The images are the sample platform's media: approval downloads them from
here through the ordinary pinning code, as it would from a platform's CDN.
The digest preview renders today's email on each request and sends nothing.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from sqlmodel import Session

from monitor.config import Settings
from monitor.demo.adapter import MEDIA_PATH, POSTS_PATH
from monitor.demo.images import ensure_image
from monitor.demo.sample import build_sample
from monitor.services.digest import compute_digest
from monitor.services.mail import build_digest_message

DIGEST_PATH = "/demo/digest"
_IMAGE_NAME = re.compile(r"^s\d{3}\.jpg$")
_SID = re.compile(r"^s\d{3}$")
#: The email's HTML uses inline styles (mail clients need them) and shows its chart inline.
DIGEST_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none';"
    " form-action 'none'; frame-ancestors 'none'"
)


def digest_preview_html(message: EmailMessage) -> str:
    """The email's HTML part with its ``cid:`` chart swapped for the PNG itself."""
    html = ""
    charts: dict[str, bytes] = {}
    for part in message.walk():
        if part.get_content_type() == "text/html":
            html = part.get_content()
        elif part.get_content_maintype() == "image" and part["Content-ID"]:
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                charts[part["Content-ID"].strip("<>")] = payload
    for cid, png in charts.items():
        encoded = base64.b64encode(png).decode("ascii")
        html = html.replace(f"cid:{cid}", f"data:image/png;base64,{encoded}")
    return html


def sample_router(images_dir: Path) -> APIRouter:
    """Routes for the sample platform's media, post pages and the digest preview."""
    router = APIRouter()
    posts = {post.sid: post for post in build_sample()}

    @router.get(MEDIA_PATH + "{name}")
    def sample_image(name: str) -> Response:
        """A sample image, drawn on first request into the demo's temporary folder."""
        sid = name.removesuffix(".jpg")
        post = posts.get(sid) if _IMAGE_NAME.match(name) else None
        if post is None or post.image is None:
            return PlainTextResponse("No such sample image.", status_code=404)
        return FileResponse(ensure_image(post, images_dir), media_type="image/jpeg")

    @router.get(POSTS_PATH + "{sid}")
    def sample_post(sid: str) -> Response:
        """What the "original post" link shows: the sample post as its platform has it."""
        post = posts.get(sid) if _SID.match(sid) else None
        if post is None:
            return PlainTextResponse("No such sample post.", status_code=404)
        body = (
            f"Training sample post {post.sid}, as it would appear on {post.network}.\n"
            f"By {post.name} ({post.handle})\n\n{post.text}\n"
        )
        return PlainTextResponse(body)

    @router.get(DIGEST_PATH)
    def digest_preview(request: Request) -> Response:
        """Today's digest email so far, as partners would receive it; nothing is sent."""
        settings: Settings = request.app.state.settings
        today = datetime.now(settings.zone).date()
        with Session(request.app.state.engine) as session:
            digest = compute_digest(session, settings, today)
        html = digest_preview_html(build_digest_message(digest, settings))
        return HTMLResponse(
            html, headers={"Content-Security-Policy": DIGEST_CSP, "Cache-Control": "no-store"}
        )

    return router


def add_sample_site(app: FastAPI, images_dir: Path) -> None:
    """Serve the sample under ``/demo`` on the product's own origin (see module docstring)."""
    app.include_router(sample_router(images_dir))
