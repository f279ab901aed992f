"""The moderation queue: tabs and filters for everyone logged in, decisions for moderators.

Forms post and redirect back (the outcome shows once, as a flash message);
``queue.js`` sends the same forms with ``Accept: application/json`` and gets
the outcome as JSON instead, so the page works with and without script.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Form, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import col, select

from monitor.errors import UserError
from monitor.models import Post, PostStatus, Role
from monitor.services.analysis import blur_faces, is_withheld
from monitor.services.app_settings import gallery_paused
from monitor.services.audit import Action, audit_log
from monitor.services.campaigns import campaigns_of
from monitor.services.consent import DEFAULT_COVERS, record_consent
from monitor.services.known_images import posts_with_picture_of
from monitor.services.media import PINNED_NAME_RE, is_held_media, pinned_file
from monitor.services.moderation import (
    MAX_BULK_POSTS,
    MAX_SEARCH_CHARS,
    QUEUE_TABS,
    QueueCursor,
    QueueFilters,
    StaleDecision,
    compose_reason,
    cursor_after,
    cursor_at_start,
    decide,
    decide_many,
    describe_for_people,
    list_queue,
    load_cards,
    queue_counts,
    queue_facets,
    record_reveal,
    reject_reasons,
    revealed_by,
)
from monitor.services.placements import Scope, in_scope
from monitor.services.queue_live import MAX_ARRIVALS, parse_shown, queue_changes
from monitor.services.sessions import add_flash, pop_flash
from monitor.services.staging import stage_post
from monitor.services.takedown import (
    CATEGORIES,
    OUTCOMES,
    open_requests,
    open_takedown_count,
    top_takedowns,
    version_for_decision,
    versions_for_rejects,
)
from monitor.services.undo import last_undoable, undo_decision
from monitor.services.users import role_at_least
from monitor.web.deps import (
    MAX_FORM_FIELDS,
    MAX_ROW_ID,
    AccountChange,
    CampaignStaff,
    QueueChange,
    QueuePage,
    SessionDep,
    nav_counts,
    parse_row_id,
)
from monitor.web.forms import (
    BulkForm,
    CampaignChoiceForm,
    ConsentForm,
    DecisionForm,
    PostForm,
    QueueLiveQuery,
    QueueQuery,
    UndoForm,
)

#: Bulk decisions post one field per selected post: more than the parser's default allows.
router = APIRouter(form_limits={"max_fields": MAX_FORM_FIELDS})
#: The queue shows only our own stored copies of media: a moderator's browser never
#: contacts a media host (which could track them, or serve them other bytes).
QUEUE_CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'none';"
    " style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'"
)
_MAX_FIELD = 200
#: Tab counts and filter menus scan indexes of every post; a few seconds' staleness keeps
#: pages fast however large the store grows.
OVERVIEW_TTL_SECONDS = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class QueueOverview:
    counts: dict[str, int]
    platforms: list[str]
    tags: list[str]


def cached_overview(app: FastAPI, session: SessionDep, scope: Scope) -> QueueOverview:
    """A campaign's tab counts and filter choices, recomputed at most every few seconds
    per process."""
    cache: dict[int, tuple[float, QueueOverview]] = getattr(app.state, "queue_overview", None) or {}
    now = time.monotonic()
    cached = cache.get(scope.campaign_id)
    if cached is not None and now - cached[0] < OVERVIEW_TTL_SECONDS:
        return cached[1]
    platforms, tags = queue_facets(session)
    overview = QueueOverview(queue_counts(session, scope), platforms, tags)
    app.state.queue_overview = {**cache, scope.campaign_id: (now, overview)}
    return overview


def forget_overview(app: FastAPI) -> None:
    """A decision here changed the counts: recompute them on the next page."""
    app.state.queue_overview = None


def _parse_date(value: str, label: str, problems: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(f"Ignored the {label} date: use YYYY-MM-DD.")
        return None


def _filters(query: QueueQuery, problems: list[str]) -> QueueFilters:
    tab = query.tab or "pending"
    if tab not in QUEUE_TABS:
        problems.append("Unknown tab: showing Pending.")
        tab = "pending"
    order = query.order
    return QueueFilters(
        tab=tab,
        platform=query.platform[:40],
        tag=query.tag.lstrip("#")[:_MAX_FIELD],
        author=query.author[:_MAX_FIELD],
        since=_parse_date(query.since[:20], "from", problems),
        until=_parse_date(query.until[:20], "to", problems),
        text=query.q[:MAX_SEARCH_CHARS],
        newest_first=order == "newest" or (not order and tab in ("approved", "rejected")),
        explicit_order=order if order in ("newest", "oldest") else "",
    )


def _query_string(filters: QueueFilters, **extra: str) -> str:
    values = {
        "tab": filters.tab,
        "platform": filters.platform,
        "tag": filters.tag,
        "author": filters.author,
        "since": filters.since.isoformat() if filters.since else "",
        "until": filters.until.isoformat() if filters.until else "",
        "q": filters.text,
        "order": filters.explicit_order,
        **extra,
    }
    return urlencode({k: v for k, v in values.items() if v})


def _page(
    templates: Jinja2Templates, request: Request, name: str, context: dict[str, Any]
) -> Response:
    response = templates.TemplateResponse(request, name, context)
    response.headers["Content-Security-Policy"] = QUEUE_CSP
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/queue", response_class=HTMLResponse)
def queue_page(staff: QueuePage, query: Annotated[QueueQuery, Query()]) -> Response:
    """A tab of the login's campaign's queue, filtered, one keyset page at a time."""
    request, user, session, settings = staff.request, staff.user, staff.session, staff.settings
    problems: list[str] = []
    filters = _filters(query, problems)
    cursor = QueueCursor.decode(query.after)
    page = list_queue(session, filters, cursor=cursor, zone=settings.zone, scope=staff.scope)
    overview = cached_overview(request.app, session, staff.scope)
    messages = pop_flash(session=session, request_session=request.state.web_session)
    cards = load_cards(
        session, page.posts, viewer=user.name, image_analysis=settings.image_analysis
    )
    shown = [card.post.id or 0 for card in cards]
    # The campaign's open takedowns, counted once for the tabs and the navigation; with
    # none open (the usual case) the page needs no takedown queries at all.
    takedowns = nav_counts(request)["takedowns"]
    return _page(
        staff.templates,
        request,
        "queue/index.html",
        {
            "title": "Moderation queue",
            "user": user,
            "can_decide": role_at_least(staff.role, Role.MODERATOR),
            "campaign": staff.campaign,
            "campaigns": staff.campaigns,
            "filters": filters,
            "tabs": QUEUE_TABS,
            # The takedown count is read live: a request arrives from the public side.
            "counts": {**overview.counts, "takedowns": takedowns},
            "cards": cards,
            "next_url": (
                f"/queue?{_query_string(filters, after=page.next_cursor)}"
                if page.next_cursor
                else None
            ),
            "tab_query": lambda tab: _query_string(filters, tab=tab),
            # The page follows changes itself (queue.js polls this); arrivals are
            # appended only when it shows the end of its tab, in oldest-first order.
            "live_url": f"/queue/live?{_query_string(filters)}",
            "tail": _tail(filters, page.posts) if page.next_cursor is None else "",
            "return_to": f"/queue?{_query_string(filters)}",
            "platforms": overview.platforms,
            "tags": overview.tags,
            "reasons": reject_reasons(session, staff.campaign),
            "messages": messages,
            "problems": problems,
            "undoable": last_undoable(session, user.name)
            if role_at_least(staff.role, Role.MODERATOR)
            else None,
            # Open takedowns lead every tab; their tab shows each request and its review.
            "top_takedowns": []
            if filters.tab == "takedowns" or not takedowns
            else top_takedowns(session, scope=staff.scope),
            "requests": open_requests(session, shown)
            if takedowns
            else {post_id: [] for post_id in shown},
            "categories": CATEGORIES,
            "outcomes": OUTCOMES,
            "paused": gallery_paused(session, staff.campaign.id),
            "max_bulk": MAX_BULK_POSTS,
        },
    )


def _tail(filters: QueueFilters, posts: list[Post]) -> str:
    """Where arrivals would be appended, or "" when they would not go at the end."""
    if filters.newest_first:
        return ""
    return cursor_after(filters.tab, posts[-1]) if posts else cursor_at_start(filters.tab)


@router.get("/queue/live")
def queue_live(staff: QueuePage, query: Annotated[QueueLiveQuery, Query()]) -> Response:
    """What changed under an open queue page (queue.js asks every few seconds): tab
    counts, cards others decided or the platform changed, new takedown requests, and
    the cards that arrived after the page's end."""
    request, user, session, settings = staff.request, staff.user, staff.session, staff.settings
    filters = _filters(query, [])
    # Only this campaign's posts: ids the page claims to show from elsewhere tell nothing.
    shown = in_scope(session, staff.scope, parse_shown(query.shown[:8000]))
    changes = queue_changes(session, shown)
    cursor = QueueCursor.decode(query.tail)
    arrivals: list[Post] = []
    if cursor is not None and not filters.newest_first:
        page = list_queue(
            session,
            filters,
            cursor=cursor,
            limit=MAX_ARRIVALS,
            zone=settings.zone,
            scope=staff.scope,
        )
        arrivals = [post for post in page.posts if post.id not in shown]
    html = ""
    if arrivals:
        can_decide = role_at_least(staff.role, Role.MODERATOR)
        html = staff.templates.env.get_template("queue/_live_cards.html").render(
            cards=load_cards(session, arrivals, viewer=user.name),
            can_decide=can_decide,
            reasons=reject_reasons(session, staff.campaign),
            return_to=f"/queue?{_query_string(filters)}",
            csrf_token=request.state.csrf_token,
        )
    overview = cached_overview(request.app, session, staff.scope)
    body = {
        "counts": {**overview.counts, "takedowns": open_takedown_count(session, staff.scope)},
        "changed": [dataclasses.asdict(change) for change in changes.changed],
        "requested": changes.requested,
        "gone": changes.gone,
        "arrivals": html,
        "tail": _tail(filters, arrivals) if arrivals else (cursor.encode() if cursor else ""),
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/queue/posts/{post_id}", response_class=HTMLResponse)
def post_page(staff: QueuePage, post_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)]) -> Response:
    """One post with its full history."""
    request, user, session, settings = staff.request, staff.user, staff.session, staff.settings
    post = _campaign_post(staff, post_id)
    [card] = load_cards(session, [post], viewer=user.name, image_analysis=settings.image_analysis)
    messages = pop_flash(session=session, request_session=request.state.web_session)
    return _page(
        staff.templates,
        request,
        "queue/post.html",
        {
            "title": f"Post {post_id}",
            "user": user,
            "can_decide": role_at_least(staff.role, Role.MODERATOR),
            "card": card,
            "events": audit_log(session, post_id=post_id, limit=500).events,
            "reasons": reject_reasons(session, staff.campaign),
            "return_to": f"/queue/posts/{post_id}",
            "messages": messages,
        },
    )


@router.get("/queue/posts/{post_id}/reposts", response_class=HTMLResponse)
def reposts_page(staff: QueuePage, post_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)]) -> Response:
    """Every post of this campaign carrying the same picture as this one, as cards, to
    decide them together."""
    request, user, session = staff.request, staff.user, staff.session
    post = _campaign_post(staff, post_id)
    found = posts_with_picture_of(session, post, limit=MAX_BULK_POSTS)
    kept = in_scope(session, staff.scope, {p.id or 0: 0 for p in found})
    posts = [p for p in found if p.id in kept]
    return _page(
        staff.templates,
        request,
        "queue/reposts.html",
        {
            "title": f"Reposts of the picture in post {post_id}",
            "user": user,
            "can_decide": role_at_least(staff.role, Role.MODERATOR),
            "post_id": post_id,
            "cards": load_cards(session, posts, viewer=user.name),
            "reasons": reject_reasons(session, staff.campaign),
            "return_to": f"/queue/posts/{post_id}/reposts",
            "messages": pop_flash(session=session, request_session=request.state.web_session),
            "max_bulk": MAX_BULK_POSTS,
        },
    )


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _safe_return(value: str) -> str:
    if value.startswith(("/queue?", "/queue/posts/")) or value == "/queue":
        if not any(ch in value for ch in "\r\n\\"):
            return value[:2000]
    return "/queue"


def _outcome(
    request: Request,
    session: SessionDep,
    *,
    ok: bool,
    message: str,
    return_to: str,
    payload: dict[str, Any],
) -> Response:
    if _wants_json(request):
        return JSONResponse(
            {"ok": ok, "message": message, **payload}, status_code=200 if ok else 409
        )
    add_flash(session=session, request_session=request.state.web_session, message=message)
    session.commit()
    return RedirectResponse(_safe_return(return_to), status_code=303)


def refused(
    request: Request,
    session: SessionDep,
    exc: UserError,
    *,
    return_to: str,
    payload: dict[str, Any],
    prefix: str = "Not applied",
) -> Response:
    """A change the service refused: rolled back, and why shown (or answered as JSON)."""
    session.rollback()
    message = f"{prefix}: {exc}."
    return _outcome(
        request, session, ok=False, message=message, return_to=return_to, payload=payload
    )


def _reason(staff: CampaignStaff, action: str, choice: str, note: str) -> str | None:
    """The reason a decision records, from the login's campaign's list (another
    campaign's reasons are refused); a rejection needs one."""
    reason = compose_reason(choice, note, reject_reasons(staff.session, staff.campaign))
    if action == Action.REJECT and not reason:
        raise UserError("choose a reason (or write one) before rejecting")
    return reason


def _after_decision(staff: CampaignStaff) -> dict[str, Any]:
    """What the page updates in place after a decision: tab counts and the undo offer."""
    undoable = last_undoable(staff.session, staff.user.name)
    return {
        "counts": cached_overview(staff.request.app, staff.session, staff.scope).counts,
        "undo": {"event_id": undoable.event_id, "label": undoable.post_label} if undoable else None,
    }


@router.post("/queue/decide")
def decide_one(staff: QueueChange, form: Annotated[DecisionForm, Form()]) -> Response:
    """Approve or reject one post of the login's campaign at the version the moderator saw."""
    request, user, session, settings = staff.request, staff.user, staff.session, staff.settings
    return_to, action, version = form.return_to, form.action, form.version
    if version is None:
        raise HTTPException(status_code=404, detail="No such post (or no version given).")
    post = _campaign_post(staff, form.post_id)
    try:
        reason = _reason(staff, action, form.reason_choice, form.reason_note)
        if action == Action.APPROVE:
            # A copy missing or lost is fetched now, outside the decision's transaction (and
            # the lock a read may hold); fetching bumps the version, so the moderator who
            # never saw it gets a stale refusal and looks again.
            # The rollback expires ``post``: read its id first, touch no row until staged.
            post_key = post.id or 0
            session.rollback()
            stage_post(
                engine=request.app.state.engine, settings=settings, post_id=post_key, retry=True
            )
        result = decide(
            session=session,
            post=post,
            action=action,
            actor=user.name,
            reason=reason,
            settings=settings,
            expected_version=version_for_decision(session, post.id or 0, action, version),
            alt_texts=form.alt_texts(),
            decorative=form.decorative_ids(),
            media_seen=bool(revealed_by(session, user.name, [post])),
            acknowledged_flags=form.ack_flag,
            campaign=staff.campaign,
        )
    except UserError as exc:  # a StaleDecision tells the page to reload the post
        return refused(
            request,
            session,
            exc,
            return_to=return_to,
            payload={"stale": isinstance(exc, StaleDecision)},
        )
    session.commit()
    forget_overview(request.app)
    verb = "Approved" if result.to_status == PostStatus.APPROVED else "Rejected"
    return _outcome(
        request,
        session,
        ok=True,
        message=f"{verb} {describe_for_people(post)}.",
        return_to=return_to,
        payload={
            "post_id": result.post_id,
            "status": result.to_status,
            "version": post.version,
            **_after_decision(staff),
        },
    )


@router.post("/queue/bulk")
def decide_bulk(staff: QueueChange, form: Annotated[BulkForm, Form()]) -> Response:
    """Approve or reject every selected post (``id:version`` each) in one transaction."""
    request, user, session, settings = staff.request, staff.user, staff.session, staff.settings
    return_to, action = form.return_to, form.action
    if len(form.selected) > MAX_BULK_POSTS:
        raise HTTPException(status_code=413, detail=f"Select at most {MAX_BULK_POSTS} posts.")
    versions: dict[int, int] = {}
    for value in form.selected:
        post_id, _, version = value.partition(":")
        if (pid := parse_row_id(post_id)) is None or (ver := parse_row_id(version)) is None:
            raise HTTPException(status_code=400, detail="A selection is not id:version.")
        versions[pid] = ver
    if action == Action.REJECT:
        versions = versions_for_rejects(session, versions)
    if not versions:
        return _outcome(
            request,
            session,
            ok=False,
            message="Nothing selected.",
            return_to=return_to,
            payload={"decided": [], "refused": {}},
        )
    try:
        reason = _reason(staff, action, form.reason_choice, form.reason_note)
        selected_posts = session.exec(select(Post).where(col(Post.id).in_(list(versions)))).all()
        outcome = decide_many(
            session=session,
            versions=versions,
            action=action,
            actor=user.name,
            reason=reason,
            settings=settings,
            revealed=revealed_by(session, user.name, selected_posts),
            campaign=staff.campaign,
        )
    except UserError as exc:
        return refused(
            request, session, exc, return_to=return_to, payload={"decided": [], "refused": {}}
        )
    session.commit()
    forget_overview(request.app)
    verb = "Approved" if action == Action.APPROVE else "Rejected"
    message = f"{verb} {len(outcome.decided)} of {len(versions)} selected posts."
    if action == Action.APPROVE and (left_out := outcome.needs_a_closer_look):
        message += (
            f" Left out {left_out} that need a closer look (hidden media or flags):"
            " open each to approve it."
        )
    if outcome.refused:
        message += " Not applied: " + " ".join(
            f"{reason}." for reason in list(outcome.refused.values())[:10]
        )
    return _outcome(
        request,
        session,
        ok=not outcome.refused,
        message=message,
        return_to=return_to,
        payload={
            "decided": [r.post_id for r in outcome.decided],
            "refused": {str(k): v for k, v in outcome.refused.items()},
        },
    )


@router.get("/queue/media/{name}")
def staged_media(name: str, staff: QueuePage) -> Response:
    """Our stored copy of an attachment, for staff of a campaign whose post holds it: the
    very file approval publishes."""
    session, settings = staff.session, staff.settings
    match = PINNED_NAME_RE.match(name)
    path = pinned_file(settings.media_dir, name) if match else None
    if (
        match is None
        or path is None
        or not is_held_media(session, match["hash"], within=staff.scope)
        or is_withheld(session, match["hash"])
        or not path.is_file()
    ):
        raise HTTPException(status_code=404, detail="No such stored media.")
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type="image/jpeg", headers=headers)


def _campaign_post(staff: CampaignStaff, post_id: int | None) -> Post:
    """The post ``post_id`` names if it is in the login's campaign, else a 404 that says
    the same as for a post that does not exist (nothing about another campaign leaks)."""
    post = staff.session.get(Post, post_id) if post_id is not None else None
    if post is None or not in_scope(staff.session, staff.scope, {post.id or 0: 0}):
        raise HTTPException(status_code=404, detail=f"No post {post_id}.")
    return post


def _posted_post(form: PostForm, staff: CampaignStaff) -> Post:
    """The post a card's form names in its ``post_id`` field, or a 404."""
    return _campaign_post(staff, form.post_id)


@router.post("/queue/reveal")
def reveal_media(staff: QueueChange, form: Annotated[PostForm, Form()]) -> Response:
    """Show a post's hidden media to this moderator, on the record (approval checks it)."""
    request, user, session = staff.request, staff.user, staff.session
    return_to = form.return_to
    post = _posted_post(form, staff)
    record_reveal(session=session, post=post, actor=user.name)
    session.commit()
    if _wants_json(request):
        return JSONResponse({"ok": True, "post_id": post.id, "version": post.version})
    target = _safe_return(return_to)
    return RedirectResponse(f"{target}#post-{post.id}", status_code=303)


@router.post("/queue/blur-faces")
def blur_faces_route(staff: QueueChange, form: Annotated[PostForm, Form()]) -> Response:
    """Replace the stored copies by ones blurred at the faces found: what approval publishes."""
    request, user, session, settings = staff.request, staff.user, staff.session, staff.settings
    return_to = form.return_to
    post = _posted_post(form, staff)
    # Read before the rollback: touching an expired row afterwards would begin a transaction
    # (on SQLite, the write lock) that the blurring's own transaction then waits on.
    post_id, actor = post.id or 0, user.name
    session.rollback()  # the image work runs outside this request's transaction
    try:
        count = blur_faces(
            engine=request.app.state.engine, settings=settings, post_id=post_id, actor=actor
        )
    except UserError as exc:
        return refused(request, session, exc, return_to=return_to, payload={"post_id": post_id})
    post = session.get(Post, post_id) or post
    return _outcome(
        request,
        session,
        ok=True,
        message=(
            f"Faces blurred in {count} image{'s' if count != 1 else ''} of"
            f" {describe_for_people(post)}: look at the blurred copy, then approve."
        ),
        return_to=return_to,
        payload={"post_id": post_id, "version": post.version},
    )


@router.post("/queue/undo")
def undo(staff: QueueChange, form: Annotated[UndoForm, Form()]) -> Response:
    """Take back one's own last decision, while nothing else happened to the post."""
    request, user, session = staff.request, staff.user, staff.session
    return_to, event_id = form.return_to, form.event_id
    try:
        if event_id is None:
            raise UserError("there is no decision of yours to undo")
        result = undo_decision(
            session=session, actor=user.name, event_id=event_id, campaign_id=staff.scope.campaign_id
        )
    except UserError as exc:
        return refused(request, session, exc, return_to=return_to, payload={}, prefix="Not undone")
    session.commit()
    forget_overview(request.app)
    post = session.get(Post, result.post_id)
    name = describe_for_people(post) if post is not None else "the post"
    return _outcome(
        request,
        session,
        ok=True,
        message=f"Undone: {name} is {result.to_status} again.",
        return_to=return_to,
        payload={"post_id": result.post_id, "status": result.to_status},
    )


@router.post("/queue/consent")
def consent(staff: QueueChange, form: Annotated[ConsentForm, Form()]) -> Response:
    """Record how an opted-out author's consent to publish was obtained (audited)."""
    request, user, session = staff.request, staff.user, staff.session
    return_to = form.return_to
    post = _posted_post(form, staff)
    problems: list[str] = []
    obtained = _parse_date(form.obtained_on, "consent", problems)
    try:
        if obtained is None:
            raise UserError("give the date consent was obtained (YYYY-MM-DD)")
        record_consent(
            session=session,
            post=post,
            actor=user.name,
            how=form.how,
            obtained_on=obtained,
            covers=form.covers or DEFAULT_COVERS,
        )
    except UserError as exc:
        return refused(
            request, session, exc, return_to=return_to, payload={}, prefix="Consent not recorded"
        )
    session.commit()
    return _outcome(
        request,
        session,
        ok=True,
        message=f"Consent recorded for {describe_for_people(post)}.",
        return_to=return_to,
        payload={"post_id": post.id},
    )


@router.post("/queue/campaign")
def choose_campaign(staff: AccountChange, form: Annotated[CampaignChoiceForm, Form()]) -> Response:
    """Work on another of one's campaigns: this login's queue shows that campaign's posts."""
    session, settings, user = staff.session, staff.settings, staff.user
    campaign = next(
        (c for c in campaigns_of(session, settings, user) if c.slug == form.campaign), None
    )
    if campaign is None:
        raise HTTPException(status_code=404, detail="No such campaign of yours.")
    staff.request.state.web_session.campaign_id = campaign.id
    session.add(staff.request.state.web_session)
    session.commit()
    forget_overview(staff.request.app)
    return _outcome(
        staff.request,
        session,
        ok=True,
        message=f"Now working on {campaign.name}.",
        return_to="/queue",
        payload={"campaign": campaign.slug},
    )
