"""Researcher pages for reward-model training runs: the list with the launch form (the paper's defaults shown),
and a run's page with its live loss, accuracy and learning-rate curves (static/js/rewards.js polls the API's
metrics/ sub-resource while the job runs) and its checkpoints. Annotators reach none of these pages (403)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from spatiallab.accounts.roles import DASHBOARD_ROLES, role_required
from spatiallab.core.htmx import done
from spatiallab.generation.forms import PairFilterForm
from spatiallab.jobs.models import ACTIVE_STATUSES
from spatiallab.jobs.views import run_control_view
from spatiallab.prompts.forms import add_service_errors
from spatiallab.rewards.forms import EvaluationForm, QueueOrderForm, RunCreateForm, ScorePairsForm
from spatiallab.rewards.models import RewardMetric
from spatiallab.rewards.selectors import evaluations_visible_to, runs_visible_to
from spatiallab.rewards.services import evaluation_create, run_create, run_resume, score_pairs_launch
from spatiallab.verification.models import VerificationQueue

dashboard_only = role_required(*DASHBOARD_ROLES)
RUNS_SHOWN = 100
# The curves on a run's page (static/js/rewards.js draws one chart per key).
CURVES = (("loss", "Loss (train and eval)"), ("accuracy", "Pairwise accuracy (train and eval)"),
          ("lr", "Learning rate"))


@dashboard_only
def run_list(request):
    form = RunCreateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            model_config, train_config = form.configs()
            try:
                run = run_create(name=form.cleaned_data["name"], dataset_version=form.cleaned_data["dataset_version"],
                                 base_model=form.cleaned_data["base_model"], model_config=model_config,
                                 train_config=train_config, created_by=request.user)
            except ValidationError as exc:
                # "train.lr" -> the form's "lr" field.
                add_service_errors(form, exc, aliases={key: key.split(".", 1)[-1] for key in exc.message_dict}
                                   if hasattr(exc, "error_dict") else None)
            else:
                return redirect(reverse("reward-run-detail", args=[run.pk]))
        status = 400
    runs = runs_visible_to(request.user)[:RUNS_SHOWN]
    return render(request, "rewards/run_list.html", {"runs": runs, "form": form}, status=status)


@dashboard_only
def run_detail(request, pk: int):
    run = get_object_or_404(runs_visible_to(request.user), pk=pk)
    metrics = [{"step": m.step, "kind": m.kind, "values": m.values}
               for m in RewardMetric.objects.filter(run=run).order_by("step", "kind")]
    active = bool(run.job and run.job.status in ACTIVE_STATUSES)
    return render(request, "rewards/run_detail.html", {
        "run": run, "metrics": metrics, "curve_titles": CURVES, "active": active,
        "checkpoints": run.checkpoints.order_by("step"),
        "metrics_url": reverse("api-reward-run-metrics", args=[run.pk]),
        "run_url": reverse("api-reward-run-detail", args=[run.pk]),
        "evaluation_form": EvaluationForm(run=run),
        **_evaluations_context(request, run),
    })


# Cancel and Resume buttons.
run_control = run_control_view(runs_visible_to=runs_visible_to, resume=run_resume,
                               detail_url_name="reward-run-detail")


# --- Evaluations ----------------------------------------------------------------------------------------------

EVALUATIONS_SHOWN = 200
# The cells of the paper's Table 1, then the relation kinds: the comparison chart's groups.
TABLE_CELLS = ("overall", "1 edit", "2-3 edits")


def _evaluations_context(request, run) -> dict:
    evaluations = list(evaluations_visible_to(request.user).filter(run=run))
    for evaluation in evaluations:
        evaluation.table = [(evaluation.report or {}).get(name) for name in TABLE_CELLS]
    return {"run": run, "evaluations": evaluations,
            "evaluations_poll": any(e.job and e.job.status in ACTIVE_STATUSES for e in evaluations)}


@dashboard_only
@require_GET
def run_evaluations(request, pk: int):
    """The run's evaluations table (polled while one is computing)."""
    run = get_object_or_404(runs_visible_to(request.user), pk=pk)
    return render(request, "rewards/_evaluations.html", _evaluations_context(request, run))


@dashboard_only
@require_POST
def run_evaluate(request, pk: int):
    run = get_object_or_404(runs_visible_to(request.user), pk=pk)
    form = EvaluationForm(request.POST, run=run)
    if form.is_valid():
        try:
            evaluation_create(checkpoint=form.cleaned_data["checkpoint"],
                              dataset_version=form.cleaned_data["dataset_version"],
                              split=form.cleaned_data["split"], created_by=request.user)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return done(request, reverse("reward-run-detail", args=[run.pk]) + "#evaluations")
    return render(request, "rewards/_evaluation_form.html", {"run": run, "evaluation_form": form}, status=400)


def _cells(report: dict) -> dict:
    """{group: {accuracy, low, high, n}} of one report: Table 1's cells, then each relation kind."""
    cells = {}
    for name in TABLE_CELLS:
        if report.get(name, {}).get("n"):
            cells[name] = report[name]
    for kind, cell in sorted((report.get("by_relation") or {}).items()):
        cells[kind] = cell
    return {name: {"accuracy": cell["accuracy"], "low": cell["ci95"][0], "high": cell["ci95"][1], "n": cell["n"]}
            for name, cell in cells.items()}


@dashboard_only
@require_GET
def evaluation_compare(request):
    """Every evaluation (newest first) with checkboxes; the ticked ones (?ids=) side by side: accuracy with 95 %
    intervals per Table 1 cell and relation kind, as grouped bars and a table."""
    visible = evaluations_visible_to(request.user)
    wanted = [int(value) for value in request.GET.getlist("ids") if value.isdigit() and len(value) < 12]
    if wanted:
        chosen = list(visible.filter(pk__in=wanted, status="succeeded").order_by("run_id", "step", "id"))
    else:  # the latest few finished ones
        chosen = sorted(visible.filter(status="succeeded")[:4], key=lambda e: (e.run_id, e.step, e.id))
    series = [{"id": e.pk, "label": f"{e.run.name} · step {e.step} · {e.dataset_version.name}/{e.split or 'all'}",
               "cells": _cells(e.report)} for e in chosen]
    groups = []
    for item in series:
        groups += [name for name in item["cells"] if name not in groups]
    rows = [{"group": name, "values": [item["cells"].get(name) for item in series]} for name in groups]
    return render(request, "rewards/evaluation_compare.html", {
        "evaluations": visible[:EVALUATIONS_SHOWN], "chosen": {e.pk for e in chosen}, "series": series,
        "groups": groups, "rows": rows})


# --- The model helps the annotators: ordering a queue, verdicts in the gallery ---------------------------------


@dashboard_only
@require_POST
def queue_order(request, queue_pk: int):
    """Launches the score_pairs job that scores the queue's undecided pairs and then orders its open items."""
    queue = get_object_or_404(VerificationQueue, pk=queue_pk)
    form = QueueOrderForm(request.POST)
    back = reverse("queue-detail", args=[queue.pk])
    if not form.is_valid():
        messages.error(request, "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()))
        return redirect(back)
    try:
        job = score_pairs_launch(checkpoint=form.cleaned_data["checkpoint"], queue=queue,
                                 order_by=form.cleaned_data["order_by"], created_by=request.user)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, f"Job {job.pk} scores the queue's pairs, then orders its open items.")
    return redirect(back)


@dashboard_only
@require_POST
def score_gallery_pairs(request):
    """Launches a score_pairs job for the pairs matching the gallery's filters (its query string)."""
    form = ScorePairsForm(request.POST)
    query = request.POST.get("selection", "")
    back = reverse("pair-gallery") + (f"?{query}" if query else "")
    if not form.is_valid():
        messages.error(request, "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()))
        return redirect(back)
    filters = PairFilterForm(QueryDict(query))
    if not filters.is_valid():
        messages.error(request, "The gallery's filters are not valid.")
        return redirect(back)
    try:
        job = score_pairs_launch(checkpoint=form.cleaned_data["checkpoint"], selection=filters.filters(),
                                 limit=form.cleaned_data["limit"], created_by=request.user)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
        return redirect(back)
    messages.success(request, f"Job {job.pk} scores up to {form.cleaned_data['limit']} of these pairs; choose the "
                              f"checkpoint in the filters to see its verdicts.")
    return redirect(reverse("job-detail", args=[job.pk]))
