"""Researcher pages for verification queues: the list with the create form, a queue's page (settings, progress,
items, flagged items), adjudication of disputed items, and the agreement statistics with their plots.

Thin: forms check the input, services store, selectors read. Bad input answers 400 with the form and its errors
(static/js/app.js lets htmx swap those in), and nothing is stored. Researchers may see which image came from the
perfect prompt (the adjudication page labels them); annotators reach none of these pages (403).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from spatiallab.accounts.roles import DASHBOARD_ROLES, role_required
from spatiallab.core.htmx import done as _done
from spatiallab.core.htmx import partial as _partial
from spatiallab.generation.selectors import generators_visible_to, pairs_filtered, pairs_visible_to
from spatiallab.jobs.selectors import jobs_visible_to
from spatiallab.prompts.forms import add_service_errors
from spatiallab.prompts.models import PromptSet
from spatiallab.prompts.selectors import comparison, paginate, prompt_sets_visible_to
from spatiallab.rewards.forms import QueueOrderForm
from spatiallab.verification.forms import (
    AdjudicateForm,
    ItemFilterForm,
    QueueCreateForm,
    QueueEditForm,
    SelectionForm,
    StatusForm,
)
from spatiallab.verification.models import (
    Answer,
    Assignment,
    AssignmentStatus,
    Choice,
    ItemStatus,
    QueueStatus,
)
from spatiallab.verification.selectors import (
    disputed_items,
    queue_progress,
    queue_stats,
    queues_visible_to,
    queues_with_progress,
    stats_as_dict,
)
from spatiallab.verification.services import (
    BROKEN_IMAGE,
    item_adjudicate,
    item_restore,
    queue_create,
    queue_update,
)

dashboard_only = role_required(*DASHBOARD_ROLES)

QUEUES_PER_PAGE = 50
ITEMS_PER_PAGE = 50
FLAGGED_SHOWN = 50
DISPUTED_LISTED = 50
# A throughput line is filled hour by hour (hours without answers drawn as 0) up to this span; a longer one
# plots only the hours that had answers.
MAX_FILLED_HOURS = 24 * 60
DECIDED = (ItemStatus.VERIFIED, ItemStatus.REJECTED, ItemStatus.DISPUTED)




def _queue(request, pk: int):
    return get_object_or_404(queues_visible_to(request.user), pk=pk)


def _selection_choices(user) -> dict:
    """The selects of the pair selection offer what the user may see."""
    return {"prompt_sets": PromptSet.objects.filter(pk__in=prompt_sets_visible_to(user).values("pk")),
            "generators": generators_visible_to(user), "jobs": jobs_visible_to(user)}


# --- Progress bars -----------------------------------------------------------------------------------------------

BAR_STATUSES = (ItemStatus.VERIFIED, ItemStatus.REJECTED, ItemStatus.DISPUTED, ItemStatus.FLAGGED)


@dataclass(frozen=True)
class Segment:
    status: str
    label: str
    count: int
    percent: float


def segments(total: int, counts: dict[str, int]) -> list[Segment]:
    """A stacked bar: verified, rejected, disputed and flagged items as shares of all items (the rest pending)."""
    if not total:
        return []
    return [Segment(status, ItemStatus(status).label, counts.get(status, 0),
                    round(100.0 * min(counts.get(status, 0), total) / total, 2)) for status in BAR_STATUSES]


# --- The queue list and the create form --------------------------------------------------------------------------


def _list_page(request, *, form=None, status=200):
    page = paginate(queues_with_progress(request.user), page=request.GET.get("page"), per_page=QUEUES_PER_PAGE)
    queues = list(page.object_list)
    for queue in queues:
        queue.segments = segments(queue.item_count, {
            ItemStatus.VERIFIED: queue.verified_count, ItemStatus.REJECTED: queue.rejected_count,
            ItemStatus.DISPUTED: queue.disputed_count, ItemStatus.FLAGGED: queue.flagged_count})
        queue.decided_count = queue.verified_count + queue.rejected_count + queue.disputed_count
    context = {"page": page, "queues": queues,
               "form": form or QueueCreateForm(**_selection_choices(request.user))}
    return render(request, "verification/queue_list.html", context, status=status)


@dashboard_only
@require_GET
def queue_list(request):
    return _list_page(request)


@dashboard_only
@require_POST
def queue_new(request):
    form = QueueCreateForm(request.POST, **_selection_choices(request.user))
    if form.is_valid():
        try:
            build = queue_create(**form.service_kwargs(), created_by=request.user)
        except ValidationError as exc:
            add_service_errors(form, exc, aliases={"gold": "gold_pairs"})
        else:
            if build.queue.build_job_id:
                messages.success(request, f"Queue “{build.queue.name}”: a job is adding its {build.items:,} pairs "
                                          f"and {build.gold} gold; it opens when the job is done.")
            else:
                messages.success(request, f"Queue “{build.queue.name}” created with {build.items} "
                                          f"pair{'s' if build.items != 1 else ''} and {build.gold} gold.")
            return _done(request, reverse("queue-detail", args=[build.queue.pk]))
    if _partial(request):
        return render(request, "verification/_queue_form.html", {"form": form}, status=400)
    return _list_page(request, form=form, status=400)


@dashboard_only
@require_GET
def queue_pair_count(request):
    """htmx, as the selection changes: how many pairs match, and how many of them could be gold."""
    form = SelectionForm(request.GET, **_selection_choices(request.user))
    if not form.is_valid():
        return render(request, "verification/_pair_count.html", {"form": form}, status=400)
    pairs = pairs_filtered(pairs_visible_to(request.user), **form.selection())
    counts = pairs.aggregate(total=Count("pk"), known=Count("pk", filter=Q(ground_truth_ok__isnull=False)))
    return render(request, "verification/_pair_count.html", {"form": form, "counts": counts})


# --- A queue's page ----------------------------------------------------------------------------------------------


def _progress_context(queue) -> dict:
    progress = queue_progress(queue)
    return {"queue": queue, "progress": progress, "segments": segments(progress["items"], progress["by_status"])}


def _items_context(request, queue) -> dict:
    form = ItemFilterForm(request.GET)
    items = queue.items.select_related("pair__prompt", "adjudication").defer("pair__prompt__graph",
                                                                            "pair__meta").order_by("pk")
    if form.is_valid():
        data = form.cleaned_data
        if data["status"]:
            items = items.filter(status=data["status"])
        if data["kind"]:
            items = items.filter(is_gold=data["kind"] == "gold")
        page = paginate(items, page=data["page"], per_page=ITEMS_PER_PAGE)
    else:
        page = None
    query = request.GET.copy()
    query.pop("page", None)
    return {"queue": queue, "item_form": form, "page": page, "query": query.urlencode(),
            "decided": DECIDED}


def _flagged_context(queue, **extra) -> dict:
    reports = Prefetch("assignments", to_attr="reports", queryset=Assignment.objects.filter(
        status=AssignmentStatus.SKIPPED, skip_reason__startswith=BROKEN_IMAGE).select_related("annotator")
        .order_by("answered_at"))
    flagged = queue.items.filter(status=ItemStatus.FLAGGED).prefetch_related(reports).order_by("pk")
    return {"queue": queue, "flagged": list(flagged[:FLAGGED_SHOWN]), "flagged_total": flagged.count(),
            "broken_prefix": BROKEN_IMAGE, **extra}


def _detail_page(request, queue, *, edit_form=None, status=200):
    started = queue.assignments.exists()
    context = {
        **_progress_context(queue),
        **_items_context(request, queue),
        **_flagged_context(queue),
        "edit_form": edit_form or QueueEditForm(queue=queue, started=started),
        "started": started,
        "annotators": list(queue.annotators.order_by("username")),
        "statuses": QueueStatus,
        "order_form": QueueOrderForm(initial={"order_by": queue.order_by or "sigma",
                                              "checkpoint": queue.order_checkpoint_id}),
    }
    return render(request, "verification/queue_detail.html", context, status=status)


@dashboard_only
@require_GET
def queue_detail(request, pk: int):
    queue = _queue(request, pk)
    if _partial(request):  # the items filter and pager swap only the items table
        context = _items_context(request, queue)
        return render(request, "verification/_items.html", context, status=200 if context["page"] else 400)
    return _detail_page(request, queue)


@dashboard_only
@require_GET
def queue_progress_block(request, pk: int):
    return render(request, "verification/_queue_progress.html", _progress_context(_queue(request, pk)))


@dashboard_only
@require_POST
def queue_edit(request, pk: int):
    queue = _queue(request, pk)
    form = QueueEditForm(request.POST, queue=queue, started=queue.assignments.exists())
    if form.is_valid():
        try:
            queue_update(queue=queue, annotators=list(form.cleaned_data["annotators"]), **form.changes())
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Queue “{queue.name}” saved.")
            return _done(request, reverse("queue-detail", args=[queue.pk]))
    if _partial(request):
        return render(request, "verification/_queue_edit_form.html",
                      {"queue": queue, "edit_form": form}, status=400)
    return _detail_page(request, queue, edit_form=form, status=400)


@dashboard_only
@require_POST
def queue_set_status(request, pk: int):
    """The Pause / Resume / Close buttons."""
    queue = _queue(request, pk)
    form = StatusForm(request.POST)
    if form.is_valid():
        queue_update(queue=queue, status=form.cleaned_data["status"])
        messages.success(request, f"Queue “{queue.name}” is {queue.get_status_display().lower()}.")
        return _done(request, reverse("queue-detail", args=[queue.pk]))
    messages.error(request, "status: " + " ".join(form.errors.get("status", [])))
    return _detail_page(request, queue, status=400)


@dashboard_only
@require_POST
def queue_item_restore(request, pk: int, item_pk: int):
    queue = _queue(request, pk)
    item = get_object_or_404(queue.items.all(), pk=item_pk)
    try:
        item_restore(item=item)
    except ValidationError as exc:
        error = " ".join(exc.messages)
        if _partial(request):
            return render(request, "verification/_flagged.html", _flagged_context(queue, error=error), status=400)
        messages.error(request, f"Item {item.pk}: {error}")
        return _detail_page(request, queue, status=400)
    if _partial(request):
        response = render(request, "verification/_flagged.html", _flagged_context(queue, restored=item))
        response["HX-Trigger"] = "queue-changed"  # the progress block and the items table reload
        return response
    messages.success(request, f"Item {item.pk} is back in the queue.")
    return redirect(reverse("queue-detail", args=[queue.pk]) + "#flagged")


# --- Adjudication --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerdictRow:
    annotator: str
    status: str
    status_label: str
    answer: str
    answer_label: str
    clicked: str
    seconds: float | None
    skip_reason: str
    at: datetime | None


CLICKED = {Choice.LEFT: "left image", Choice.RIGHT: "right image", Choice.BOTH: "both",
           Choice.NEITHER: "neither", Choice.UNSURE: "can't tell"}


def _verdicts(item) -> list[VerdictRow]:
    rows = []
    for a in sorted(item.assignments.all(), key=lambda a: (a.answered_at is None, a.answered_at or a.leased_at, a.pk)):
        clicked = ""
        if a.choice:
            clicked = CLICKED.get(a.choice, a.choice)
            clicked += f" (perfect image on the {'left' if a.winner_left else 'right'})"
        rows.append(VerdictRow(a.annotator.get_username(), a.status, a.get_status_display(), a.answer,
                               Answer(a.answer).label if a.answer else "", clicked, a.seconds, a.skip_reason,
                               a.answered_at))
    return rows


def _adjudicable(queue):
    """Items a researcher may decide: disputed ones, or decided ones to overrule the consensus."""
    return (queue.items.filter(is_gold=False, status__in=DECIDED)
            .select_related("pair__prompt", "pair__perturbed", "adjudication")
            .prefetch_related("assignments__annotator"))


def _adjudication_context(queue, *, item=None, item_id=None, form=None, **extra) -> dict:
    if item is None and item_id:
        item = _adjudicable(queue).filter(pk=item_id).first()
    if item is None:
        item = disputed_items(queue).select_related("adjudication").first()
    context = {
        "queue": queue, "item": item, "form": form or AdjudicateForm(),
        "remaining": disputed_items(queue).count(),
        "listed": list(disputed_items(queue).values_list("pk", "pair_id")[:DISPUTED_LISTED]), **extra,
    }
    if item is not None:
        pair = item.pair
        edits = pair.perturbed.edits.select_related("rule").order_by("position")
        verdicts = _verdicts(item)
        tally = {}
        for row in verdicts:
            if row.answer:
                tally[row.answer_label] = tally.get(row.answer_label, 0) + 1
        adjudication = getattr(item, "adjudication", None)
        context.update(pair=pair, comparison=comparison(pair.prompt.text, pair.perturbed.text, edits),
                       verdicts=verdicts, tally=sorted(tally.items(), key=lambda kv: -kv[1]),
                       adjudication=adjudication)
    return context


@dashboard_only
@require_GET
def queue_adjudicate(request, pk: int):
    queue = _queue(request, pk)
    item_id = request.GET.get("item", "")
    context = _adjudication_context(queue, item_id=int(item_id) if item_id.isdigit() else None)
    if _partial(request):
        return render(request, "verification/_adjudication.html", context)
    return render(request, "verification/queue_adjudicate.html", context)


@dashboard_only
@require_POST
def queue_adjudicate_item(request, pk: int, item_pk: int):
    queue = _queue(request, pk)
    item = get_object_or_404(_adjudicable(queue), pk=item_pk)
    form = AdjudicateForm(request.POST)
    if form.is_valid():
        try:
            item_adjudicate(item=item, status=form.cleaned_data["status"], decided_by=request.user,
                            note=form.cleaned_data["note"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            decided = f"Item {item.pk} (pair {item.pair_id}): {ItemStatus(form.cleaned_data['status']).label.lower()}."
            if _partial(request):  # the next disputed item replaces this one
                return render(request, "verification/_adjudication.html",
                              _adjudication_context(queue, decided=decided))
            messages.success(request, decided)
            return redirect("queue-adjudicate", pk=queue.pk)
    context = _adjudication_context(queue, item=item, form=form)
    template = "verification/_adjudication.html" if _partial(request) else "verification/queue_adjudicate.html"
    return render(request, template, context, status=400)


# --- Statistics ------------------------------------------------------------------------------------------------


def _number(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def hourly(throughput: list[dict]) -> list[dict]:
    """Answers per hour with the hours between filled in (a line over time, not over the hours that had answers),
    and the running total: progress over time."""
    points = {}
    for point in throughput:
        hour = datetime.fromisoformat(point["hour"])
        points[hour if timezone.is_aware(hour) else timezone.make_aware(hour)] = point["answers"]
    if not points:
        return []
    start, end = min(points), max(points)
    span = int((end - start).total_seconds() // 3600) + 1
    hours = [start + timedelta(hours=i) for i in range(span)] if span <= MAX_FILLED_HOURS else sorted(points)
    rows, total = [], 0
    for hour in hours:
        total += points.get(hour, 0)
        rows.append({"hour": timezone.localtime(hour).strftime("%Y-%m-%d %H:00"), "answers": points.get(hour, 0),
                     "total": total})
    return rows


# Axis labels for the answer plot (the table beside it has the full wording).
ANSWER_SHORT = {Answer.WINNER: "Perfect only", Answer.LOSER: "Perturbed only", Answer.BOTH: "Both",
                Answer.NEITHER: "Neither", Answer.UNSURE: "Can't tell"}


@dataclass(frozen=True)
class PersonRow:
    user_id: int
    username: str
    answered: int
    skipped: int
    skip_rate: str
    median_seconds: str
    gold_accuracy: str
    gold_answered: int
    consensus_agreement: str
    consensus_items: int
    position_bias: str
    single_picks: int


@dashboard_only
@require_GET
def queue_statistics(request, pk: int):
    queue = _queue(request, pk)
    data = stats_as_dict(queue_stats(queue))
    data["hourly"] = hourly(data["throughput"])
    data["answer_labels"] = ANSWER_SHORT
    people = [PersonRow(p["user_id"], p["username"], p["answered"], p["skipped"], _percent(p["skip_rate"]),
                        _number(p["median_seconds"], 1), _percent(p["gold_accuracy"]), p["gold_answered"],
                        _percent(p["consensus_agreement"]), p["consensus_items"], _percent(p["position_bias"]),
                        p["single_picks"]) for p in data["annotators"]]
    names = data["kappa"]["annotators"]
    kappa_rows = [(name, [(_number(value), data["kappa"]["shared"][i][j]) for j, value in enumerate(row)])
                  for i, (name, row) in enumerate(zip(names, data["kappa"]["matrix"], strict=True))]
    context = {
        **_progress_context(queue),
        "data": data,
        "numbers": {"percent_agreement": _percent(data["percent_agreement"]),
                    "fleiss_kappa": _number(data["fleiss_kappa"], 3),
                    "krippendorff_alpha": _number(data["krippendorff_alpha"], 3)},
        "people": people,
        "kappa_names": names,
        "kappa_rows": kappa_rows,
        "answers": [(Answer(value).label, data["answers"].get(value, 0)) for value in Answer.values],
    }
    return render(request, "verification/queue_stats.html", context)
