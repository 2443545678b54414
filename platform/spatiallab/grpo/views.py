"""Researcher pages for Flow-GRPO runs: the list with the launch form (the paper's defaults shown), and a run's
page with its live curves (static/js/grpo.js polls the API's metrics/ while the job runs), the evaluation
gallery (base vs a chosen step, the same prompts and seeds) and its checkpoints, each of which registers as a
generator. Annotators reach none of these pages (403)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from spatiallab.accounts.roles import DASHBOARD_ROLES, role_required
from spatiallab.generation.views import storage_image_response
from spatiallab.grpo.forms import RunCreateForm
from spatiallab.grpo.models import GrpoMetric
from spatiallab.grpo.selectors import checkpoints_visible_to, gallery, runs_visible_to, samples_visible_to
from spatiallab.grpo.services import checkpoint_register_generator, run_create, run_resume
from spatiallab.jobs.models import ACTIVE_STATUSES
from spatiallab.jobs.views import run_control_view
from spatiallab.prompts.forms import add_service_errors

dashboard_only = role_required(*DASHBOARD_ROLES)
RUNS_SHOWN = 100
# The curves on a run's page (static/js/grpo.js draws one chart per key).
CURVES = (("reward", "Reward: train mean ± std, eval mean"), ("kl", "KL to the base model"),
          ("clip_fraction", "Clip fraction"), ("nfe", "NFEs per prompt"))


@dashboard_only
def run_list(request):
    form = RunCreateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                run = run_create(name=data["name"], generator=data["generator"],
                                 reward_checkpoint=data["reward_checkpoint"], reward=data["reward"],
                                 train_prompt_set=data["train_prompt_set"], eval_prompt_set=data["eval_prompt_set"],
                                 config=form.config(), created_by=request.user)
            except ValidationError as exc:
                # "config.lr" -> the form's "lr" field.
                add_service_errors(form, exc, aliases={key: key.split(".", 1)[-1] for key in exc.message_dict}
                                   if hasattr(exc, "error_dict") else None)
            else:
                return redirect(reverse("grpo-run-detail", args=[run.pk]))
        status = 400
    runs = runs_visible_to(request.user)[:RUNS_SHOWN]
    return render(request, "grpo/run_list.html", {"runs": runs, "form": form}, status=status)


@dashboard_only
@require_GET
def run_detail(request, pk: int):
    run = get_object_or_404(runs_visible_to(request.user), pk=pk)
    metrics = [{"step": m.step, "kind": m.kind, "values": m.values}
               for m in GrpoMetric.objects.filter(run=run).order_by("step", "kind")]
    try:
        wanted = int(request.GET["step"]) if request.GET.get("step") else None
    except ValueError:
        wanted = None
    steps, chosen, rows = gallery(run, wanted)
    active = bool(run.job and run.job.status in ACTIVE_STATUSES)
    return render(request, "grpo/run_detail.html", {
        "run": run, "metrics": metrics, "curve_titles": CURVES, "active": active,
        "checkpoints": run.checkpoints.select_related("generator").order_by("step"),
        "gallery_steps": [s for s in steps if s > 0], "gallery_step": chosen, "gallery_rows": rows,
        "metrics_url": reverse("api-grpo-run-metrics", args=[run.pk]),
        "run_url": reverse("api-grpo-run-detail", args=[run.pk]),
    })


# Cancel and Resume buttons.
run_control = run_control_view(runs_visible_to=runs_visible_to, resume=run_resume,
                               detail_url_name="grpo-run-detail")


@dashboard_only
@require_POST
def checkpoint_register(request, pk: int):
    checkpoint = get_object_or_404(checkpoints_visible_to(request.user), pk=pk)
    try:
        generator, created = checkpoint_register_generator(checkpoint=checkpoint, created_by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Registered as the generator {generator.name!r}." if created else
                         f"Already registered as the generator {generator.name!r}.")
    return redirect(reverse("grpo-run-detail", args=[checkpoint.run_id]) + "#checkpoints")


@dashboard_only
@require_GET
def sample_image(request, pk: int):
    sample = get_object_or_404(samples_visible_to(request.user).only("image"), pk=pk)
    return storage_image_response(sample.image)
