"""Safeguarding and hijack actions from the queue: takedown reviews, escalation, the
kill switch for moderators, a blocking rule applied to the backlog, and a bulk
rejection of every post matching the queue's filters.

Each route is thin: the service decides and audits; the outcome comes back as a
flash message (or JSON for ``queue.js``), as for decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, Response

from monitor.errors import UserError
from monitor.models import Post, RuleKind, TakedownOutcome
from monitor.services.alerts import send_soon
from monitor.services.audit import Action
from monitor.services.escalation import (
    close_escalation,
    escalate,
    list_escalations,
)
from monitor.services.gallery import set_gallery_paused
from monitor.services.moderation import MAX_BULK_POSTS, decide_many, matching_versions
from monitor.services.placements import in_scope
from monitor.services.rules import add_rule, apply_to_pending, preview_on_pending
from monitor.services.sessions import pop_flash
from monitor.services.takedown import OUTCOMES, resolve_takedown
from monitor.web.deps import (
    MAX_ROW_ID,
    LeadChange,
    LeadPage,
    QueueChange,
    SessionDep,
)
from monitor.web.forms import (
    BulkMatchingForm,
    CloseEscalationForm,
    EscalationForm,
    GallerySwitchForm,
    QueueRuleForm,
    TakedownReviewForm,
)
from monitor.web.routes.queue import (
    _filters,
    _outcome,
    _page,
    _query_string,
    _reason,
    forget_overview,
    refused,
)

router = APIRouter()
PostId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def _post(session: SessionDep, post_id: int) -> Post:
    post = session.get(Post, post_id)
    if post is None:
        raise HTTPException(status_code=404, detail=f"No post {post_id}.")
    return post


def _attempt(
    request: Request, session: SessionDep, return_to: str, change: Callable[[], str]
) -> Response:
    """Run ``change()`` (returns the message); a refusal is rolled back and explained."""
    try:
        message = change()
    except UserError as exc:
        return refused(request, session, exc, return_to=return_to, payload={}, prefix="Not done")
    session.commit()
    forget_overview(request.app)
    return _outcome(request, session, ok=True, message=message, return_to=return_to, payload={})


@router.post("/queue/takedowns/{post_id}/resolve")
def takedown_resolve(
    staff: QueueChange, post_id: PostId, form: Annotated[TakedownReviewForm, Form()]
) -> Response:
    """Review a post's takedown requests (a moderator of any campaign it is in): keep it
    published, or take it down from every campaign's gallery."""
    request, user, session, settings = staff.request, staff.user, staff.session, staff.settings
    post = _post(session, post_id)
    if not in_scope(session, staff.scope, {post_id: 0}):
        raise HTTPException(status_code=404, detail=f"No post {post_id}.")
    outcome = form.outcome

    def change() -> str:
        count = resolve_takedown(
            session=session,
            settings=settings,
            post=post,
            outcome=outcome,
            actor=user.name,
            note=form.note,
            campaign=staff.campaign,
        )
        what = "request" if count == 1 else f"{count} requests"
        done = OUTCOMES[TakedownOutcome(outcome)]
        return f"Takedown {what} on {post.author_handle}'s post: {done}."

    return _attempt(request, session, form.return_to, change)


@router.post("/queue/posts/{post_id}/escalate")
def escalate_post(
    staff: QueueChange, post_id: PostId, form: Annotated[EscalationForm, Form()]
) -> Response:
    """Escalate to the safeguarding lead (a moderator of any campaign the post is in): off
    every public route for good, lead alerted."""
    request, user, session, settings = staff.request, staff.user, staff.session, staff.settings
    post = _post(session, post_id)
    if not in_scope(session, staff.scope, {post_id: 0}):
        raise HTTPException(status_code=404, detail=f"No post {post_id}.")

    def change() -> str:
        escalate(
            session=session,
            settings=settings,
            post=post,
            actor=user.name,
            reason=form.reason,
        )
        return (
            f"Escalated {post.author_handle}'s post to the safeguarding lead;"
            " it is off the public gallery for good."
        )

    response = _attempt(request, session, form.return_to, change)
    send_soon(request.app.state.engine, settings)
    return response


@router.get("/queue/escalations", response_class=HTMLResponse)
def escalations_page(staff: LeadPage) -> Response:
    """Open escalations first, then the closed ones, for the safeguarding lead."""
    request, user, session, templates = staff.request, staff.user, staff.session, staff.templates
    return _page(
        templates,
        request,
        "queue/escalations.html",
        {
            "title": "Escalations",
            "user": user,
            "open": list_escalations(session, open_only=True, scope=staff.scope),
            "all": list_escalations(session, open_only=False, scope=staff.scope),
            "messages": pop_flash(session=session, request_session=request.state.web_session),
        },
    )


@router.post("/queue/escalations/{escalation_id}/close")
def escalation_close(
    staff: LeadChange,
    escalation_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    form: Annotated[CloseEscalationForm, Form()],
) -> Response:
    """Close an escalation with its outcome (the post stays off the public routes)."""
    request, user, session = staff.request, staff.user, staff.session

    def change() -> str:
        close_escalation(
            session=session,
            escalation_id=escalation_id,
            actor=user.name,
            outcome=form.outcome,
        )
        return f"Closed escalation {escalation_id}."

    return _attempt(request, session, "/queue/escalations", change)


@router.post("/queue/gallery")
def queue_gallery(staff: QueueChange, form: Annotated[GallerySwitchForm, Form()]) -> Response:
    """The kill switch from the queue, for moderators (of any campaign) as well as admins."""
    request, user, session = staff.request, staff.user, staff.session
    state = form.state

    def change() -> str:
        if state not in ("pause", "resume"):
            raise UserError("choose pause or resume")
        return set_gallery_paused(
            session=session,
            pause=state == "pause",
            actor=user.name,
            reason=form.reason,
            campaign=staff.campaign,
        )

    return _attempt(request, session, form.return_to, change)


@router.post("/queue/rules")
def queue_rule(staff: QueueChange, form: Annotated[QueueRuleForm, Form()]) -> Response:
    """Block a word or an author in the login's campaign (its own rule: it rejects only
    there): ``preview`` counts the campaign's pending posts it would hit; ``apply`` adds
    the rule and runs it over the campaign's pending queue at once."""
    request, user, session, campaign = staff.request, staff.user, staff.session, staff.campaign
    kind, pattern, action, step = form.kind, form.pattern, form.rule_action, form.step

    def change() -> str:
        if kind not in (RuleKind.BLOCKED_TERM, RuleKind.BLOCKED_AUTHOR):
            raise UserError("choose a blocked word or a blocked author")
        if step == "preview":
            hits = preview_on_pending(
                session=session, kind=kind, pattern=pattern, action=action, campaign=campaign
            )
            return f"Preview: this rule would {action} {hits} pending posts. Nothing changed yet."
        if step != "apply":
            raise UserError("preview the rule, then apply it")
        rule = add_rule(
            session=session,
            kind=kind,
            pattern=pattern,
            action=action,
            actor=user.name,
            campaign=campaign,
        )
        done = apply_to_pending(session=session, rule=rule)
        return (
            f"Added rule {rule.id}; on the pending queue it rejected {done.rejected}"
            f" and flagged {done.flagged} posts."
        )

    return _attempt(request, session, form.return_to, change)


@router.post("/queue/bulk-matching")
def bulk_matching(staff: QueueChange, form: Annotated[BulkMatchingForm, Form()]) -> Response:
    """Reject every post matching the queue's filters (up to MAX_BULK_POSTS).

    The first post answers with a confirmation page that shows the count; the
    confirmed post rejects only the posts that existed when it was shown.
    Approval is never offered here: each approval needs a person to see the post.
    """
    request, user, session, settings = staff.request, staff.user, staff.session, staff.settings
    problems: list[str] = []
    filters = _filters(form, problems)
    return_to = f"/queue?{_query_string(filters)}"
    matched = matching_versions(
        session, filters, zone=settings.zone, limit=MAX_BULK_POSTS, scope=staff.scope
    )
    confirmed_up_to = form.up_to
    if not confirmed_up_to.isdigit():
        return _page(
            staff.templates,
            request,
            "queue/confirm_bulk.html",
            {
                "title": "Confirm bulk rejection",
                "user": user,
                "count": len(matched),
                "limit": MAX_BULK_POSTS,
                "up_to": max(matched, default=0),
                "form": form.model_dump(exclude={"up_to"}, exclude_defaults=True),
                "return_to": return_to,
            },
        )
    up_to = int(confirmed_up_to[:19])
    versions = {pid: version for pid, version in matched.items() if pid <= up_to}

    def change() -> str:
        outcome = decide_many(
            session=session,
            versions=versions,
            action=Action.REJECT,
            actor=user.name,
            reason=_reason(staff, Action.REJECT, form.reason_choice, form.reason_note),
            settings=settings,
            campaign=staff.campaign,
        )
        message = f"Rejected {len(outcome.decided)} of {len(versions)} matching posts."
        if outcome.refused:
            message += f" {len(outcome.refused)} not applied (changed or already decided)."
        return message

    return _attempt(request, session, return_to, change)
