"""The one definition of "the public may see this post", shared by every public route.

A post is public while it is approved, not held by a takedown request waiting
for review, and not escalated to the safeguarding lead. The gallery pages, the
JSON feed, the static export and the pinned media all filter through
:func:`publicly_visible`, so a hold or an escalation empties every surface at
the next request.
"""

from __future__ import annotations

import sqlalchemy as sa

from monitor.models import Post, PostStatus


def publicly_visible(posts: sa.Table | None = None) -> sa.ColumnElement[bool]:
    """A SQL condition on the posts table (or an alias of it)."""
    table = Post.__table__ if posts is None else posts
    return sa.and_(
        table.c.status == PostStatus.APPROVED,
        table.c.takedown_hold.is_(False),
        table.c.escalated.is_(False),
    )


def is_public(post: Post) -> bool:
    """The same rule for a loaded post."""
    return post.status == PostStatus.APPROVED and not post.takedown_hold and not post.escalated
