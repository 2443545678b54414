"""Researcher pages for reward-model training runs: the list with the launch form (the paper's defaults shown),
and a run's page with its live loss, accuracy and learning-rate curves (static/js/rewards.js polls the API's
metrics/ sub-resource while the job runs) and its checkpoints. Annotators reach none of these pages (403)."""

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from spatiallab.accounts.roles import DASHBOARD_ROLES, role_required
from spatiallab.jobs.models import ACTIVE_STATUSES
from spatiallab.prompts.forms import add_service_errors
from spatiallab.rewards.forms import RunCreateForm
from spatiallab.rewards.models import RewardMetric
from spatiallab.rewards.selectors import runs_visible_to
from spatiallab.rewards.services import run_create

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
    })
