"""The annotator's pages: their queue list, the work page that shows one item at a time, the actions on it
(answer, skip, undo) and the item's images.

Every action answers with the item fragment (`_annotate_item.html`): it stores the action, then claims the
next item, so the page moves on with one request and no reload (static/js/annotate.js swaps it in once its
images are decoded). The fragment never names the pair, nor which image came from the perfect prompt: images
are addressed by assignment and screen side.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from spatiallab.accounts.roles import ANNOTATION_ROLES, role_required
from spatiallab.generation.views import storage_image_response
from spatiallab.verification.models import Assignment, AssignmentStatus, Choice, VerificationQueue
from spatiallab.verification.selectors import (
    annotator_counts,
    assignment_image_name,
    item_view,
    queues_for_annotator,
    queues_open_to,
)
from spatiallab.verification.services import (
    VerificationError,
    item_claim,
    item_skip,
    verdict_submit,
    verdict_undo,
)

annotation_only = role_required(*ANNOTATION_ROLES)

# The keys of the work page, in the order of the buttons (annotate.js reads them from data-key).
OPTIONS = [
    (Choice.LEFT, "1", "Left follows"),
    (Choice.RIGHT, "2", "Right follows"),
    (Choice.BOTH, "3", "Both follow"),
    (Choice.NEITHER, "4", "Neither follows"),
    (Choice.UNSURE, "5", "Can't tell"),
]


class AnswerForm(forms.Form):
    assignment_id = forms.IntegerField(min_value=1)
    # Checked by verdict_submit, whose message lists the known choices.
    choice = forms.CharField(max_length=20)
    seconds = forms.FloatField(required=False, min_value=0, max_value=86400)
    client_key = forms.CharField(required=False, max_length=64)


class SkipForm(forms.Form):
    assignment_id = forms.IntegerField(min_value=1)
    reason = forms.CharField(required=False, max_length=200)
    broken = forms.BooleanField(required=False)


def _error_text(errors: dict) -> str:
    """`field: message` for each invalid field, so the annotator (and an API-minded client) sees which."""
    return " ".join(f"{field}: {' '.join(str(m) for m in messages_)}" for field, messages_ in errors.items())


def _open_queue(request, queue_id: int) -> VerificationQueue:
    # The queue must be open to this user in the query itself: anything else is a 404, never a 403 that
    # confirms the queue exists.
    return get_object_or_404(queues_open_to(request.user), pk=queue_id)


def _undo_left(queue: VerificationQueue, user) -> int:
    """Seconds left to undo the annotator's last action in the queue (0 when it was a skip or is too old); for
    a page load, so that a reload right after an answer still offers undo. verdict_undo has the final word."""
    last = (Assignment.objects.filter(queue=queue, annotator=user,
                                      status__in=[AssignmentStatus.ANSWERED, AssignmentStatus.SKIPPED])
            .order_by("-answered_at", "-pk").values_list("status", "answered_at").first())
    if last is None or last[0] != AssignmentStatus.ANSWERED or last[1] is None:
        return 0
    left = settings.VERIFICATION_UNDO_SECONDS - (timezone.now() - last[1]).total_seconds()
    return max(0, int(left))


def _item_context(request, queue: VerificationQueue, *, message: str = "", level: str = "info",
                  undo_left: int = 0) -> dict:
    """The annotator's current item (their live lease, else a newly claimed one) and their own progress."""
    item = None
    try:
        lease = item_claim(queue=queue, user=request.user)
    except VerificationError as exc:
        lease, message, level = None, str(exc), "error"
    if lease is not None:
        item = item_view(lease)
    return {
        "queue": queue,
        "item": item,
        "options": OPTIONS,
        "counts": annotator_counts(queue, request.user),
        "message": message,
        "level": level,
        "undo_left": undo_left,
    }


def _respond(request, queue: VerificationQueue, *, message: str = "", level: str = "info", status: int = 200,
             undo_left: int = 0):
    """htmx gets the next item's fragment (also with a 4xx status, which annotate.js swaps in with its message);
    a plain form post (no JavaScript) goes back to the page, or sees it again with the error."""
    if not request.htmx:
        if status < 400:
            if message:
                messages.info(request, message)
            return redirect("annotate-queue", queue_id=queue.pk)
        context = _item_context(request, queue, message=message, level=level, undo_left=undo_left)
        return render(request, "verification/annotate_queue.html", context, status=status)
    context = _item_context(request, queue, message=message, level=level, undo_left=undo_left)
    return render(request, "verification/_annotate_item.html", context, status=status)


@annotation_only
@require_GET
def queue_list(request):
    return render(request, "verification/annotate_list.html", {"queues": queues_for_annotator(request.user)})


@annotation_only
@require_GET
def queue_work(request, queue_id: int):
    queue = _open_queue(request, queue_id)
    context = _item_context(request, queue, undo_left=_undo_left(queue, request.user))
    return render(request, "verification/annotate_queue.html", context)


@annotation_only
@require_POST
def answer(request, queue_id: int):
    queue = _open_queue(request, queue_id)
    form = AnswerForm(request.POST)
    if not form.is_valid():
        return _respond(request, queue, message=_error_text(form.errors), level="error", status=400)
    data = form.cleaned_data
    try:
        submitted = verdict_submit(user=request.user, assignment_id=data["assignment_id"], choice=data["choice"],
                                   seconds=data["seconds"], client_key=data["client_key"] or None)
    except ValidationError as exc:
        return _respond(request, queue, message=_error_text(exc.message_dict), level="error", status=400)
    except VerificationError as exc:
        return _respond(request, queue, message=str(exc), level="error", status=exc.status)
    message = "Answer saved (sent twice, stored once)." if submitted.replayed else "Answer saved."
    return _respond(request, queue, message=message, undo_left=settings.VERIFICATION_UNDO_SECONDS)


@annotation_only
@require_POST
def skip(request, queue_id: int):
    queue = _open_queue(request, queue_id)
    form = SkipForm(request.POST)
    if not form.is_valid():
        return _respond(request, queue, message=_error_text(form.errors), level="error", status=400)
    data = form.cleaned_data
    try:
        item_skip(user=request.user, assignment_id=data["assignment_id"], reason=data["reason"],
                  broken=data["broken"])
    except VerificationError as exc:
        return _respond(request, queue, message=str(exc), level="error", status=exc.status)
    message = "Flagged as broken and skipped." if data["broken"] else "Skipped."
    return _respond(request, queue, message=message)


@annotation_only
@require_POST
def undo(request, queue_id: int):
    queue = _open_queue(request, queue_id)
    try:
        verdict_undo(user=request.user, queue=queue)
    except VerificationError as exc:
        return _respond(request, queue, message=str(exc), level="error", status=exc.status)
    # The item comes back leased to this annotator: the claim below returns it.
    return _respond(request, queue, message="Answer taken back: answer this item again.")


@annotation_only
@require_GET
def assignment_image(request, assignment_id: int, side: str):
    # Only the user's own assignment (the selector filters by annotator): another's is a 404.
    name = assignment_image_name(user=request.user, assignment_id=assignment_id, side=side)
    if not name:
        raise Http404("No such image.")
    return storage_image_response(name)
