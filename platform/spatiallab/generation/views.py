"""Researcher pages for generators and generated pairs, and the view that serves pair images.

Thin: forms check the input, services store, selectors read. Bad input answers 400 with the form and its errors
(static/js/app.js lets htmx swap those in), and nothing is stored. No page ever puts a pair's images in a public
URL: they come through `pair_image`, which checks the role.
"""

import json
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from spatiallab.accounts.roles import DASHBOARD_ROLES, role_required
from spatiallab.core.htmx import partial as _partial
from spatiallab.generation import selectors
from spatiallab.generation.forms import (
    BackendForm,
    GeneratePairsForm,
    GeneratorEditForm,
    GeneratorForm,
    PairFilterForm,
    add_job_errors,
    settings_json,
    settings_reference,
)
from spatiallab.generation.selectors import (
    generators_visible_to,
    generators_with_pair_counts,
    pairs_filtered,
    pairs_for_gallery,
    pairs_visible_to,
)
from spatiallab.generation.services import generator_create, generator_update
from spatiallab.jobs.models import ACTIVE_STATUSES
from spatiallab.jobs.services import job_create
from spatiallab.prompts.forms import add_service_errors
from spatiallab.prompts.models import PromptSet
from spatiallab.prompts.selectors import comparison, paginate, prompt_sets_visible_to, relation_label
from spatiallab.rewards.forms import ScorePairsForm
from spatiallab.rewards.selectors import pair_scores_for, pairs_with_verdict
from spatiallab.verification.models import QueueItem

dashboard_only = role_required(*DASHBOARD_ROLES)

IMAGE_FIELDS = {"winner": "winner_image", "loser": "loser_image", "winner-thumb": "winner_thumb",
                "loser-thumb": "loser_thumb"}
CONTENT_TYPES = {"png": "image/png", "webp": "image/webp"}


def pair_image_response(queryset, pk: int, which: str):
    """One of a pair's four images. Served through a view (not a public media URL) so access follows the
    user's role; on object storage the browser is sent to the storage's (signed) URL instead."""
    if which not in IMAGE_FIELDS:
        raise Http404("Unknown image.")
    return storage_image_response(getattr(get_object_or_404(queryset.only(IMAGE_FIELDS[which]), pk=pk),
                                          IMAGE_FIELDS[which]))


def storage_image_response(name: str):
    """A stored image by its storage name, for views that have checked access already."""
    if settings.STORAGE_BACKEND == "s3":  # object storage serves the bytes itself, through a signed URL
        return HttpResponseRedirect(default_storage.url(name))
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError:
        raise Http404("The image file is missing from storage.") from None
    response = FileResponse(handle, content_type=CONTENT_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream"))
    response["Cache-Control"] = "private, max-age=86400"  # a pair's files never change once stored
    return response


@dashboard_only
@require_GET
def pair_image(request, pk: int, which: str):
    return pair_image_response(pairs_visible_to(request.user), pk, which)



def _query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def _visible_prompt_sets(user):
    # Only the ids of the selector's sets: its per-set counts are not needed for a select or a lookup.
    return PromptSet.objects.filter(pk__in=prompt_sets_visible_to(user).values("pk"))


# --- Generators ----------------------------------------------------------------------------------------------

# The settings a table row shows; the rest are one click away (the row's full JSON).
KEY_SETTINGS = {
    "diffusers": ("model", "steps", "guidance", "width", "height", "dtype", "lora"),
    "scene-renderer": ("width", "height", "break_fraction", "labels", "object_scale", "back_scale", "shapes",
                       "exact_colours"),
}


def _with_summary(generator):
    settings = generator.settings or {}
    generator.key_settings = [(name, json.dumps(settings[name])) for name in KEY_SETTINGS.get(generator.backend, ())
                              if name in settings and settings[name] not in ("", None)]
    generator.settings_json = settings_json(settings)
    return generator


def _generators_page(request, *, form=None, status=200):
    context = {
        "generators": [_with_summary(generator) for generator in generators_with_pair_counts(request.user)],
        "form": form or GeneratorForm(backend=request.GET.get("backend")),
        "reference": settings_reference(),
    }
    return render(request, "generation/generator_list.html", context, status=status)


@dashboard_only
@require_GET
def generator_list(request):
    return _generators_page(request)


@dashboard_only
@require_POST
def generator_register(request):
    form = GeneratorForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            generator = generator_create(name=data["name"], backend=data["backend"], settings=data["settings"],
                                         description=data["description"], enabled=data["enabled"],
                                         created_by=request.user)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Generator “{generator.name}” registered.")
            return redirect(reverse("generator-list") + f"#generator-{generator.pk}")
    return _generators_page(request, form=form, status=400)


@dashboard_only
@require_GET
def generator_defaults(request):
    """htmx, when the backend select changes: the settings field filled with that backend's defaults."""
    form = BackendForm(request.GET)
    if not form.is_valid():
        return render(request, "generation/_backend_errors.html", {"form": form}, status=400)
    settings_form = GeneratorForm(backend=form.cleaned_data["backend"])
    return render(request, "generation/_settings_field.html", {"field": settings_form["settings"]})


@dashboard_only
@require_POST
def generator_toggle(request, pk: int):
    generator = get_object_or_404(generators_with_pair_counts(request.user), pk=pk)
    generator_update(generator=generator, enabled=not generator.enabled)
    if _partial(request):
        return render(request, "generation/_generator_row.html", {"generator": _with_summary(generator)})
    return redirect(reverse("generator-list") + f"#generator-{generator.pk}")


@dashboard_only
@require_http_methods(["GET", "POST"])
def generator_edit(request, pk: int):
    generator = get_object_or_404(generators_with_pair_counts(request.user), pk=pk)
    if request.method == "GET":
        form = GeneratorEditForm(initial={"settings": settings_json(generator.settings),
                                          "description": generator.description})
        return render(request, "generation/generator_edit.html", {"generator": generator, "form": form})
    form = GeneratorEditForm(request.POST)
    if form.is_valid():
        try:
            generator_update(generator=generator, settings=form.cleaned_data["settings"],
                             description=form.cleaned_data["description"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Generator “{generator.name}” saved.")
            return redirect(reverse("generator-list") + f"#generator-{generator.pk}")
    return render(request, "generation/generator_edit.html", {"generator": generator, "form": form}, status=400)


# --- Pairs: gallery and detail ------------------------------------------------------------------------------

PAIRS_PER_PAGE = 24


@dataclass(frozen=True)
class RoleTruth:
    """The renderer's verdict on one image: does it follow the perfect prompt, and which relations it drew
    wrong on purpose (breaks) or could not place (unsatisfied)."""

    role: str
    follows: bool | None
    broken: list[str]
    unsatisfied: list[str]

    @property
    def as_expected(self) -> bool | None:
        """A good pair's winner follows the perfect prompt and its loser does not."""
        return None if self.follows is None else self.follows == (self.role == "winner")


@dataclass(frozen=True)
class PairCard:
    pair: object
    comparison: object
    truth: list[RoleTruth]
    score: object = None  # a reward checkpoint's PairScore, when the gallery shows a model's verdict
    humans: tuple = ()  # (queue id, queue name, item status, answers) of the pair's regular queue items


def _relation_words(item) -> str:
    if isinstance(item, dict):
        return relation_label(item)
    return item if isinstance(item, str) else json.dumps(item)


def _truth(pair) -> list[RoleTruth]:
    truth = (pair.meta or {}).get("ground_truth")
    if not isinstance(truth, dict):
        return []
    rows = []
    for role in ("winner", "loser"):
        verdict = truth.get(role)
        if isinstance(verdict, dict):
            rows.append(RoleTruth(role, verdict.get("follows"),
                                  [_relation_words(item) for item in verdict.get("broken") or []],
                                  [_relation_words(item) for item in verdict.get("unsatisfied") or []]))
    return rows


def _card(pair, score=None, humans=()) -> PairCard:
    return PairCard(pair, comparison(pair.prompt.text, pair.perturbed.text, pair.perturbed.edits.all()), _truth(pair),
                    score, tuple(humans))


def _cards(pairs: list, checkpoint=None) -> list[PairCard]:
    """The page's cards with the humans' verdicts (their queue items) and, if asked, the model's: two queries."""
    ids = [pair.pk for pair in pairs]
    humans: dict[int, list] = {}
    for row in (QueueItem.objects.filter(pair_id__in=ids, is_gold=False).order_by("queue_id")
                .values_list("pair_id", "queue_id", "queue__name", "status", "done")):
        humans.setdefault(row[0], []).append(row[1:])
    scores = pair_scores_for(checkpoint, ids) if checkpoint else {}
    return [_card(pair, scores.get(pair.pk), humans.get(pair.pk, ())) for pair in pairs]


@dashboard_only
@require_GET
def pair_gallery(request):
    form = PairFilterForm(request.GET, generators=generators_visible_to(request.user),
                          prompt_sets=_visible_prompt_sets(request.user))
    status = 200
    checkpoint = None
    if form.is_valid():
        pairs = pairs_filtered(pairs_visible_to(request.user), **form.filters())
        checkpoint = form.cleaned_data["checkpoint"]
        if checkpoint and form.cleaned_data["verdict"]:
            pairs = pairs_with_verdict(pairs, checkpoint, form.cleaned_data["verdict"])
        page = paginate(pairs_for_gallery(pairs), page=form.cleaned_data["page"], per_page=PAIRS_PER_PAGE)
        cards = _cards(list(page.object_list), checkpoint)
    else:
        page, cards, status = None, [], 400
    context = {"filter_form": form, "page": page, "cards": cards, "query": _query_without_page(request),
               "checkpoint": checkpoint, "score_form": ScorePairsForm(initial={
                   "checkpoint": checkpoint, "selection": _query_without_page(request)})}
    template = "generation/_pair_results.html" if _partial(request) else "generation/pair_gallery.html"
    return render(request, template, context, status=status)


@dashboard_only
@require_GET
def pair_detail(request, pk: int):
    pair = get_object_or_404(pairs_for_gallery(pairs_visible_to(request.user)), pk=pk)
    meta = pair.meta or {}
    context = {
        "card": _cards([pair])[0],
        "model_scores": pair.reward_scores.select_related("checkpoint__run").order_by("-checkpoint_id"),
        "pair": pair,
        "settings_json": settings_json(meta.get("settings", pair.generator.settings)),
        "timings": meta.get("timings") or {},
        "ground_truth_json": json.dumps(meta["ground_truth"], indent=2) if "ground_truth" in meta else "",
        "meta_json": json.dumps(meta, indent=2, sort_keys=True),
    }
    return render(request, "generation/pair_detail.html", context)


# --- Launching generation from a prompt set ------------------------------------------------------------------

GENERATE_JOB_KIND = "generate_pairs"
RECENT_RUNS = 10


def _prompt_set(request, pk: int) -> PromptSet:
    return get_object_or_404(_visible_prompt_sets(request.user), pk=pk)


def _runs_context(request, prompt_set) -> dict:
    runs = selectors.generation_runs(request.user, prompt_set.pk, limit=RECENT_RUNS)
    return {"prompt_set": prompt_set, "runs": runs, "poll": any(job.status in ACTIVE_STATUSES for job in runs),
            "pair_count": pairs_filtered(pairs_visible_to(request.user), prompt_set=prompt_set.pk).count()}


def _launch_context(request, prompt_set, form, **extra) -> dict:
    return {"prompt_set": prompt_set, "generate_form": form, **_runs_context(request, prompt_set), **extra}


@dashboard_only
@require_http_methods(["GET", "POST"])
def generation_launch(request, prompt_set_pk: int):
    """GET: the "Generate pairs" panel (htmx: the prompt-set page loads it; plain: a page of its own).
    POST: a generate_pairs job for this prompt set."""
    prompt_set = _prompt_set(request, prompt_set_pk)
    if request.method == "GET":
        context = _launch_context(request, prompt_set, GeneratePairsForm())
        template = "generation/_generate_panel.html" if _partial(request) else "generation/generate.html"
        return render(request, template, context)
    form = GeneratePairsForm(request.POST)
    job = None
    if form.is_valid():
        try:
            job = job_create(kind=GENERATE_JOB_KIND, params=form.job_params(prompt_set.pk), created_by=request.user)
        except ValidationError as exc:
            add_job_errors(form, exc)
    if job is None:
        if _partial(request):
            return render(request, "generation/_generate_form.html",
                          {"prompt_set": prompt_set, "generate_form": form}, status=400)
        return render(request, "generation/generate.html", _launch_context(request, prompt_set, form), status=400)
    if _partial(request):
        response = render(request, "generation/_generate_form.html",
                          {"prompt_set": prompt_set, "generate_form": GeneratePairsForm(), "launched": job})
        response["HX-Trigger"] = "generation-runs-changed"
        return response
    messages.success(request, f"Pair generation queued as job {job.pk}.")
    return redirect("job-detail", pk=job.pk)


@dashboard_only
@require_GET
def generation_runs(request, prompt_set_pk: int):
    prompt_set = _prompt_set(request, prompt_set_pk)
    return render(request, "generation/_generation_runs.html", _runs_context(request, prompt_set))


# --- Failures ----------------------------------------------------------------------------------------------------

FAILURES_PER_PAGE = 50


@dashboard_only
@require_GET
def generation_failures(request):
    """What a generation job could not render: the prompts, the seed and the error, newest first."""
    failures = selectors.failures_visible_to(request.user).select_related("generator")
    job = request.GET.get("job", "")
    if job:
        if not job.isdigit():
            return render(request, "generation/failures.html", {"error": "job: must be a job id."}, status=400)
        failures = failures.filter(job_id=int(job))
    page = paginate(failures.order_by("-id"), page=request.GET.get("page"), per_page=FAILURES_PER_PAGE)
    context = {"page": page, "job": job, "query": _query_without_page(request)}
    return render(request, "generation/failures.html", context)
