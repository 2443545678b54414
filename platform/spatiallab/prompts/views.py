"""Researcher pages for prompt sets, perturbation previews and runs, perturbed prompts and perturbation rules.

Thin: forms check the input, services store, selectors read. Bad input answers 400 with the form and its errors
(htmx swaps those too: static/js/prompts.js), and nothing is stored.
"""

import json
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from ml.spatial.graph import SceneGraph
from spatiallab.accounts.roles import DASHBOARD_ROLES, role_required
from spatiallab.jobs.models import ACTIVE_STATUSES
from spatiallab.jobs.services import job_create
from spatiallab.prompts import selectors
from spatiallab.prompts.forms import (
    PerturbationPreviewForm,
    PerturbationRuleForm,
    PerturbationRunForm,
    PerturbedFilterForm,
    PromptSearchForm,
    PromptSetGenerateForm,
    PromptSetUploadForm,
    add_service_errors,
)
from spatiallab.prompts.models import Prompt
from spatiallab.prompts.services import (
    perturb_text,
    perturbation_rule_create,
    perturbation_rule_update,
    prompt_set_create_from_file,
    prompt_set_generate,
    rules_selected,
)

dashboard_only = role_required(*DASHBOARD_ROLES)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _created_message(request, created) -> None:
    messages.success(request, f"{_plural(created.created, 'prompt')} stored, "
                              f"{_plural(created.duplicates, 'duplicate')} skipped.")


def _prompt_set(request, pk: int):
    return get_object_or_404(selectors.prompt_sets_visible_to(request.user), pk=pk)


# --- List, upload, generate ------------------------------------------------------------------------------------


def _list_page(request, *, upload_form=None, generate_form=None, status=200):
    context = {
        "prompt_sets": selectors.prompt_sets_visible_to(request.user),
        "upload_form": upload_form or PromptSetUploadForm(),
        "generate_form": generate_form or PromptSetGenerateForm(),
    }
    return render(request, "prompts/prompt_set_list.html", context, status=status)


@dashboard_only
@require_GET
def prompt_set_list(request):
    return _list_page(request)


@dashboard_only
@require_POST
def prompt_set_upload(request):
    form = PromptSetUploadForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            created = prompt_set_create_from_file(
                name=form.cleaned_data["name"], data=upload.read(), filename=upload.name,
                file_format=form.cleaned_data["file_format"] or None,
                description=form.cleaned_data["description"], created_by=request.user,
            )
        except ValidationError as exc:
            add_service_errors(form, exc, aliases={"prompts": "file"})
        else:
            _created_message(request, created)
            return redirect("prompt-set-detail", pk=created.prompt_set.pk)
    return _list_page(request, upload_form=form, status=400)


@dashboard_only
@require_POST
def prompt_set_generate_view(request):
    form = PromptSetGenerateForm(request.POST)
    if form.is_valid():
        try:
            created = prompt_set_generate(name=form.cleaned_data["name"], settings=form.settings(),
                                          description=form.cleaned_data["description"], created_by=request.user)
        except ValidationError as exc:
            add_service_errors(form, exc, aliases={"prompts": "count"})
        else:
            _created_message(request, created)
            return redirect("prompt-set-detail", pk=created.prompt_set.pk)
    return _list_page(request, generate_form=form, status=400)


# --- Detail: stats, plots, search ----------------------------------------------------------------------------


def _search(request, prompt_set):
    """The search form bound to the query string and the page of matching prompts with their marked texts."""
    form = PromptSearchForm(request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    prompts = selectors.prompts_search(prompt_set, query=data.get("q", ""),
                                       relation_kind=data.get("relation_kind", ""))
    page = selectors.paginate(prompts, page=data.get("page"), per_page=selectors.PROMPTS_PER_PAGE)
    rows = [(prompt, selectors.prompt_html(prompt)) for prompt in page.object_list]
    query = {key: data[key] for key in ("q", "relation_kind") if data.get(key)}
    return {"search_form": form, "page": page, "rows": rows, "q": data.get("q", ""),
            "relation_kind": data.get("relation_kind", ""), "search_query": urlencode(query)}


def _runs_context(request, prompt_set):
    runs = selectors.perturbation_runs(request.user, prompt_set)
    return {"prompt_set": prompt_set, "runs": runs, "poll": any(job.status in ACTIVE_STATUSES for job in runs),
            "perturbed_count": selectors.perturbed_count(prompt_set)}


def _detail_context(request, prompt_set, *, run_form=None) -> dict:
    stats = selectors.prompt_set_stats(prompt_set)
    return {
        "prompt_set": prompt_set,
        "stats": stats,
        "plots": stats.plots(),
        **_search(request, prompt_set),
        "preview_form": PerturbationPreviewForm(),
        "run_form": run_form or PerturbationRunForm(),
        **_runs_context(request, prompt_set),
    }


@dashboard_only
@require_GET
def prompt_set_detail(request, pk: int):
    prompt_set = _prompt_set(request, pk)
    return render(request, "prompts/prompt_set_detail.html", _detail_context(request, prompt_set))


@dashboard_only
@require_GET
def prompt_search(request, pk: int):
    prompt_set = _prompt_set(request, pk)
    context = {"prompt_set": prompt_set, **_search(request, prompt_set)}
    return render(request, "prompts/_prompt_results.html", context)


# --- Perturbation preview ------------------------------------------------------------------------------------


def _preview(form: PerturbationPreviewForm, prompt_set):
    """The comparison for a valid form, or None with the problems added to the form."""
    if not form.is_valid():
        return None
    data = form.cleaned_data
    prompt = None
    if data["prompt"]:
        prompt = Prompt.objects.filter(prompt_set=prompt_set, pk=data["prompt"]).only("text", "graph").first()
        if prompt is None:
            form.add_error("prompt", f"No prompt with id {data['prompt']} in this set.")
            return None
    text = data["text"] or prompt.text
    # The stored graph saves a parse, but only while the text is the prompt's own (it may have been edited).
    graph = None
    if prompt and prompt.graph and text == prompt.text:
        try:
            graph = SceneGraph.from_dict(prompt.graph, text=prompt.text)
        except (KeyError, TypeError, ValueError):
            graph = None  # stored by an older parser: parse the text again
    try:
        rules = rules_selected([rule.pk for rule in data["rules"]])
        result = perturb_text(text=text, rules=rules, edits=data["edits"], seed=data["seed"], graph=graph)
    except ValidationError as exc:
        add_service_errors(form, exc)
        return None
    return selectors.comparison(result.original, result.perturbed, result.edits)


@dashboard_only
@require_GET
def perturbation_preview(request, pk: int):
    """htmx: the result partial. A plain GET (a shared link, no JavaScript): the preview page with the form."""
    prompt_set = _prompt_set(request, pk)
    if not request.GET:
        form = PerturbationPreviewForm()
        context = {"prompt_set": prompt_set, "preview_form": form, "comparison": None, "submitted": False}
        return render(request, "prompts/perturbation_preview.html", context)
    form = PerturbationPreviewForm(request.GET)
    comparison = _preview(form, prompt_set)
    context = {"prompt_set": prompt_set, "preview_form": form, "comparison": comparison, "submitted": True}
    status = 200 if comparison else 400
    template = "prompts/_preview_result.html" if request.htmx else "prompts/perturbation_preview.html"
    return render(request, template, context, status=status)


# --- Perturbation runs ---------------------------------------------------------------------------------------


@dashboard_only
@require_POST
def perturbation_run_launch(request, pk: int):
    prompt_set = _prompt_set(request, pk)
    form = PerturbationRunForm(request.POST)
    job = None
    if form.is_valid():
        try:
            job = job_create(kind=selectors.PERTURB_JOB_KIND, params=form.job_params(prompt_set.pk),
                             created_by=request.user)
        except ValidationError as exc:
            add_service_errors(form, exc)
    if job is None:
        if request.htmx:
            return render(request, "prompts/_run_form.html", {"prompt_set": prompt_set, "run_form": form},
                          status=400)
        return render(request, "prompts/prompt_set_detail.html", _detail_context(request, prompt_set, run_form=form),
                      status=400)
    if request.htmx:
        response = render(request, "prompts/_run_form.html",
                          {"prompt_set": prompt_set, "run_form": PerturbationRunForm(), "launched": job})
        response["HX-Trigger"] = "perturbation-runs-changed"
        return response
    messages.success(request, f"Perturbation run queued as job {job.pk}.")
    return redirect("job-detail", pk=job.pk)


@dashboard_only
@require_GET
def perturbation_runs_panel(request, pk: int):
    prompt_set = _prompt_set(request, pk)
    return render(request, "prompts/_runs.html", _runs_context(request, prompt_set))


# --- Perturbed prompts ----------------------------------------------------------------------------------------


@dashboard_only
@require_GET
def perturbed_prompt_list(request, pk: int):
    prompt_set = _prompt_set(request, pk)
    form = PerturbedFilterForm(request.GET)
    status = 200
    if form.is_valid():
        data = form.cleaned_data
        perturbed = selectors.perturbed_prompts(
            prompt_set, rule_id=data["rule"].pk if data["rule"] else None, n_edits=data["n_edits"],
            relation_kind=data["relation_kind"],
        )
        page = selectors.paginate(perturbed, page=data["page"], per_page=selectors.PERTURBED_PER_PAGE)
        rows = [(item, selectors.comparison(item.prompt.text, item.text, list(item.edits.all())))
                for item in page.object_list]
    else:
        page, rows, status = None, [], 400
    context = {"prompt_set": prompt_set, "filter_form": form, "page": page, "rows": rows,
               "query": _query_without_page(request)}
    template = "prompts/_perturbed_results.html" if request.htmx else "prompts/perturbed_list.html"
    return render(request, template, context, status=status)


def _query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


# --- Perturbation rules -----------------------------------------------------------------------------------------


def _with_params_json(rule):
    rule.params_json = json.dumps(rule.params, sort_keys=True)
    return rule


def _rules_page(request, *, form=None, status=200):
    rules = [_with_params_json(rule) for rule in selectors.rules_all()]
    context = {"rules": rules, "form": form or PerturbationRuleForm()}
    return render(request, "prompts/rule_list.html", context, status=status)


@dashboard_only
@require_GET
def rule_list(request):
    return _rules_page(request)


@dashboard_only
@require_POST
def rule_create(request):
    form = PerturbationRuleForm(request.POST)
    if form.is_valid():
        try:
            rule = perturbation_rule_create(created_by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Rule “{rule.name}” created.")
            return redirect(reverse("perturbation-rule-list") + f"#rule-{rule.pk}")
    return _rules_page(request, form=form, status=400)


@dashboard_only
@require_POST
def rule_toggle(request, pk: int):
    rule = get_object_or_404(selectors.rules_all(), pk=pk)
    try:
        perturbation_rule_update(rule=rule, enabled=not rule.enabled)
    except ValidationError as exc:
        # A rule stored before its kind's parameters changed: say why instead of toggling it.
        rule.refresh_from_db()
        errors = [f"{field}: {message}" for field, msgs in exc.message_dict.items() for message in msgs]
        if request.htmx:
            return render(request, "prompts/_rule_row.html", {"rule": _with_params_json(rule), "errors": errors},
                          status=400)
        for error in errors:
            messages.error(request, f"{rule.name}: {error}")
        return redirect("perturbation-rule-list")
    if request.htmx:
        return render(request, "prompts/_rule_row.html", {"rule": _with_params_json(rule)})
    return redirect("perturbation-rule-list")
