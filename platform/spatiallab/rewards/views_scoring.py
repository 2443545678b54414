"""Researcher pages for scoring with a reward checkpoint: the launch page (a best-of-n form and an upload form, and
the recent requests), and a request's page, which polls through htmx while its job runs (a progress bar) and then
shows the images ranked best first with mu and sigma, and a bar chart of the scores. Annotators get 403.

Thin: the forms check types, scoring.py's services validate and store (their errors name the field)."""

from django import forms
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from spatiallab.accounts.roles import DASHBOARD_ROLES, role_required
from spatiallab.core.htmx import done, partial
from spatiallab.generation.selectors import generators_visible_to
from spatiallab.jobs.models import ACTIVE_STATUSES, JobStatus
from spatiallab.prompts.forms import add_service_errors
from spatiallab.rewards.forms import checkpoint_label
from spatiallab.rewards.models import ScoreRequestKind
from spatiallab.rewards.scoring import (
    MAX_IMAGES,
    MAX_N,
    MAX_PROMPT_CHARS,
    MIN_N,
    pair_prompts,
    score_request_best_of_n,
    score_request_upload,
)
from spatiallab.rewards.selectors import checkpoints_visible_to, score_requests_visible_to

dashboard_only = role_required(*DASHBOARD_ROLES)
REQUESTS_SHOWN = 50
POLL = "every 1s"


class CheckpointChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return checkpoint_label(obj)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input; each is checked by the service (which names images[i])."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/*"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, list | tuple) else ([data] if data else [])
        if not files:
            raise ValidationError("Choose at least one image.")
        return list(files)


class BestOfNForm(forms.Form):
    checkpoint = CheckpointChoiceField(queryset=None, help_text="The reward checkpoint that ranks the samples.")
    generator = forms.ModelChoiceField(queryset=None, help_text="An enabled generator draws the samples.")
    prompt = forms.CharField(max_length=MAX_PROMPT_CHARS, widget=forms.Textarea(attrs={"rows": 2}))
    n = forms.IntegerField(min_value=MIN_N, max_value=MAX_N, initial=8, label="Samples (n)",
                           help_text=f"{MIN_N}-{MAX_N} samples, seeds seed .. seed + n - 1.")
    seed = forms.IntegerField(min_value=0, initial=0, help_text="Seed of the first sample.")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, prefix="best", **kwargs)
        self.fields["checkpoint"].queryset = checkpoints_visible_to(user)
        self.fields["generator"].queryset = generators_visible_to(user).filter(enabled=True).order_by("name")


class UploadForm(forms.Form):
    checkpoint = CheckpointChoiceField(queryset=None, help_text="The reward checkpoint that scores the images.")
    images = MultipleFileField(help_text=f"1-{MAX_IMAGES} images (PNG, JPEG, WebP, GIF, BMP), at most 20 MB and "
                                         f"4096x4096 each.")
    prompts = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                              help_text="One prompt per line, one line per image in file order; or leave empty and "
                                        "give one prompt for all below.")
    prompt = forms.CharField(required=False, max_length=MAX_PROMPT_CHARS, label="Prompt for all images")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, prefix="upload", **kwargs)
        self.fields["checkpoint"].queryset = checkpoints_visible_to(user)

    def prompt_lines(self) -> list[str]:
        return [line for line in self.cleaned_data["prompts"].splitlines() if line.strip()]


def _launch_best_of_n(request, form: BestOfNForm):
    if not form.is_valid():
        return None
    data = form.cleaned_data
    try:
        return score_request_best_of_n(checkpoint=data["checkpoint"], generator=data["generator"],
                                       prompt=data["prompt"], n=data["n"], seed=data["seed"],
                                       created_by=request.user)
    except ValidationError as exc:
        add_service_errors(form, exc)
        return None


def _launch_upload(request, form: UploadForm):
    if not form.is_valid():
        return None
    data = form.cleaned_data
    try:
        items = pair_prompts(data["images"], form.prompt_lines(), data["prompt"])
        return score_request_upload(checkpoint=data["checkpoint"], files_with_prompts=items,
                                    created_by=request.user)
    except ValidationError as exc:
        add_service_errors(form, exc)
        return None


@dashboard_only
def score(request):
    user = request.user
    which = request.POST.get("form") if request.method == "POST" else None
    best = BestOfNForm(request.POST if which == "best_of_n" else None, user=user)
    upload = UploadForm(request.POST if which == "upload" else None, request.FILES if which == "upload" else None,
                        user=user)
    status = 200
    if request.method == "POST":
        created = (_launch_best_of_n(request, best) if which == "best_of_n"
                   else _launch_upload(request, upload) if which == "upload" else None)
        if created is not None:
            return done(request, reverse("reward-score-detail", args=[created.pk]))
        status = 400
    requests = score_requests_visible_to(user).defer("results", "images")[:REQUESTS_SHOWN]
    return render(request, "rewards/score_list.html", {"best_form": best, "upload_form": upload,
                                                       "requests": requests, "which": which}, status=status)


def _context(score_request) -> dict:
    job = score_request.job
    active = score_request.status in (JobStatus.QUEUED, JobStatus.RUNNING) and bool(
        job and job.status in ACTIVE_STATUSES)
    return {"score_request": score_request, "job": job, "poll": active, "poll_trigger": POLL}


@dashboard_only
def score_detail(request, pk: int):
    """The request's page; htmx asks it for the progress block while the job runs, and once the request has
    finished the whole page reloads (HX-Refresh) to show the ranked images."""
    score_request = get_object_or_404(score_requests_visible_to(request.user), pk=pk)
    context = _context(score_request)
    if partial(request):
        response = render(request, "rewards/score_progress.html", context)
        if not context["poll"]:
            response["HX-Refresh"] = "true"
        return response
    results = [{**row, "image_url": reverse("api-score-request-image", args=[score_request.pk, row["index"]])}
               for row in score_request.results]
    chart = {"labels": [f"#{row['rank']} ({'sample' if row.get('seed') is not None else 'image'} {row['index']})"
                        for row in results],
             "mu": [row["mu"] for row in results], "sigma": [row["sigma"] for row in results]}
    return render(request, "rewards/score_detail.html", {
        **context, "results": results, "chart": chart,
        "best_of_n": score_request.kind == ScoreRequestKind.BEST_OF_N,
    })
