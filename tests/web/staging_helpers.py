"""Stored copies without a media host, for browser tests and benchmarks.

The browser suites have no media server the app could fetch from, so this
stores one real re-encoded picture (the production storage code) and points
every waiting attachment at it, as staging would, version bump included.
"""

from __future__ import annotations

import io

from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import select

from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import MediaItem, Post
from monitor.services.media import pinned_name, store_image


def stage_with_local_copy(engine: Engine, settings: Settings) -> int:
    """Give every attachment without a copy the same stored picture; returns how many."""
    buffer = io.BytesIO()
    Image.new("RGB", (800, 600), (40, 110, 60)).save(buffer, "PNG")
    pinned = store_image(buffer.getvalue(), settings.media_dir)
    largest = pinned_name(pinned.digest, pinned.widths[-1])
    staged = 0
    with session_scope(engine) as session:
        waiting = select(MediaItem).where(MediaItem.pinned_hash.is_(None))  # type: ignore[union-attr]
        for item in session.exec(waiting):
            item.pinned_hash, item.pinned_widths = pinned.digest, list(pinned.widths)
            item.pinned_width, item.pinned_height = pinned.width, pinned.height
            item.pinned_path = f"{pinned.digest[:2]}/{largest}"
            session.add(item)
            post = session.get(Post, item.post_id)
            if post is not None:
                post.version += 1
                session.add(post)
            staged += 1
    return staged
