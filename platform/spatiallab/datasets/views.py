"""Researcher pages for dataset versions: the list with the create form (and its live count of matching verified
pairs), and a version's page: the build job's progress while it builds; once frozen its hash, card plots, source
queues' agreement, the diff against its parent, the README and the downloads (a direct stream when small, an
export job otherwise).

Thin: forms check the input, services store, selectors read. Bad input answers 400 with the form and its errors
(static/js/app.js lets htmx swap those in), and nothing is stored. Annotators reach none of these pages (403).
"""

from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from spatiallab.accounts.roles import DASHBOARD_ROLES, role_required
from spatiallab.core.htmx import done as _done
from spatiallab.core.htmx import partial as _partial
from spatiallab.datasets.canonical import SPLITS
from spatiallab.datasets.exports import selected_count, streamable
from spatiallab.datasets.forms import CriteriaForm, ExportForm, VersionCreateForm
from spatiallab.datasets.models import DatasetExport, DatasetVersion, ExportFormat, ExportStatus, Split, VersionStatus
from spatiallab.datasets.selectors import versions_visible_to
from spatiallab.datasets.services import candidate_count, criteria_clean, export_request, version_create
from spatiallab.generation.selectors import generators_visible_to
from spatiallab.jobs.models import ACTIVE_STATUSES
from spatiallab.prompts.forms import add_service_errors
from spatiallab.prompts.models import PerturbationRule
from spatiallab.prompts.selectors import paginate
from spatiallab.verification.selectors import queues_visible_to

dashboard_only = role_required(*DASHBOARD_ROLES)

VERSIONS_PER_PAGE = 50
DIFF_IDS_SHOWN = 20
# The card's counts, each drawn as a bar chart (static/js/datasets.js) with its numbers in a table beside it.
PLOTS = (("split", "Pairs per split"), ("relation_kind", "Pairs per edited relation type"),
         ("n_edits", "Pairs per number of edits"), ("generator", "Pairs per generator"),
         ("category", "Pairs per scene category"), ("agreement", "Agreement (share of answers saying only the "
                                                                 "perfect prompt's image follows)"))
DOWNLOAD_SPLITS = ("", *SPLITS)
# Heavy columns the list never shows (the card and README can be large).
LIST_DEFERRED = ("card", "readme", "diff", "error", "criteria", "parent__card", "parent__readme", "parent__diff",
                 "parent__error", "parent__criteria")




def _version(request, pk: int) -> DatasetVersion:
    return get_object_or_404(versions_visible_to(request.user).select_related("parent", "created_by", "build_job"),
                             pk=pk)


def _criteria_choices(user) -> dict:
    """The selects offer what the user may see."""
    return {"queues": queues_visible_to(user), "generators": generators_visible_to(user),
            "rules": PerturbationRule.objects.all()}


def _create_form(request, *args, **kwargs) -> VersionCreateForm:
    return VersionCreateForm(*args, **_criteria_choices(request.user), versions=versions_visible_to(request.user),
                             **kwargs)


# --- The list and the create form --------------------------------------------------------------------------------


def _table_context(request) -> dict:
    versions = (versions_visible_to(request.user).select_related("parent", "created_by", "build_job")
                .defer(*LIST_DEFERRED).order_by("-created_at", "-pk"))
    page = paginate(versions, page=request.GET.get("page"), per_page=VERSIONS_PER_PAGE)
    rows = list(page.object_list)
    poll = any(version.status == VersionStatus.BUILDING and version.build_job
               and version.build_job.status in ACTIVE_STATUSES for version in rows)
    return {"page": page, "versions": rows, "poll": poll}


def _list_page(request, *, form=None, status=200):
    if form is None:
        parent_id = request.GET.get("parent", "")
        initial = {}
        if parent_id:
            if not parent_id.isdigit() or len(parent_id) > 18:
                parent = None
            else:
                parent = versions_visible_to(request.user).filter(pk=int(parent_id),
                                                                  status=VersionStatus.FROZEN).first()
            if parent is None:
                messages.error(request, f"No frozen dataset version {parent_id} to start from.")
            else:
                initial = VersionCreateForm.initial_from(parent)
        form = _create_form(request, initial=initial)
    context = {**_table_context(request), "form": form}
    return render(request, "datasets/version_list.html", context, status=status)


@dashboard_only
@require_GET
def version_list(request):
    return _list_page(request)


@dashboard_only
@require_GET
def version_table(request):
    """htmx: the list's table again (it polls while a version on it builds)."""
    return render(request, "datasets/_versions_table.html", _table_context(request))


@dashboard_only
@require_POST
def version_new(request):
    form = _create_form(request, request.POST)
    if form.is_valid():
        try:
            version = version_create(**form.service_kwargs(), split_salt=None, created_by=request.user)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Dataset version “{version.name}”: job {version.build_job_id} is building "
                                      f"it; it is frozen when the job is done.")
            return _done(request, reverse("dataset-version-detail", args=[version.pk]))
    if _partial(request):
        return render(request, "datasets/_version_form.html", {"form": form}, status=400)
    return _list_page(request, form=form, status=400)


@dashboard_only
@require_GET
def version_candidate_count(request):
    """htmx, as the criteria change: how many verified pairs match (an upper bound of the entries: conflicting
    answers and the agreement threshold are applied by the build)."""
    form = CriteriaForm(request.GET, **_criteria_choices(request.user))
    if not any(request.GET.getlist("queues")):
        return render(request, "datasets/_candidate_count.html", {"form": None})
    if form.is_valid():
        try:
            count = candidate_count(criteria_clean(form.criteria()))
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return render(request, "datasets/_candidate_count.html", {"form": form, "count": count})
    return render(request, "datasets/_candidate_count.html", {"form": form}, status=400)


# --- A version's page --------------------------------------------------------------------------------------------


def _polls(job) -> bool:
    return job is not None and job.status in ACTIVE_STATUSES


def _build_context(version: DatasetVersion) -> dict:
    job = version.build_job
    return {"version": version, "job": job, "poll": version.status == VersionStatus.BUILDING and _polls(job)}


def _names(model_queryset, ids) -> list[str]:
    names = dict(model_queryset.filter(pk__in=ids).values_list("pk", "name"))
    return [f"{names[pk]} (#{pk})" if pk in names else f"#{pk} (deleted)" for pk in ids]


def _criteria_summary(request, version: DatasetVersion) -> list[tuple[str, str]]:
    criteria, choices = version.criteria, _criteria_choices(request.user)
    n_edits = criteria.get("n_edits") or ""
    return [
        ("Queues", ", ".join(_names(choices["queues"], criteria.get("queues", []))) or "–"),
        ("Generators", ", ".join(_names(choices["generators"], criteria.get("generators", []))) or "all"),
        ("Perturbation rules", ", ".join(_names(choices["rules"], criteria.get("rules", []))) or "all"),
        ("Number of edits", {"1": "1 edit", "2-3": "2–3 edits"}.get(n_edits, "all")),
        ("Minimum agreement", f"{float(criteria.get('min_agreement') or 0):.2f}"),
        ("Adjudicated pairs", "included" if criteria.get("include_adjudicated", True) else "left out"),
    ]


def _bars(key: str, counts: dict) -> list[tuple[str, int]]:
    """A count's bars in reading order. Ordered here, not taken from the card: PostgreSQL's jsonb keeps an
    object's keys in its own order (shortest first), not in the order they were written."""
    if key == "split":
        return [(split, counts.get(split, 0)) for split in SPLITS]
    if key in ("n_edits", "agreement"):  # buckets in their own order ("n/a" last)
        return sorted((str(label), count) for label, count in counts.items())
    return sorted(((str(label), count) for label, count in counts.items()), key=lambda bar: (-bar[1], bar[0]))


def _plots(card: dict) -> list[dict]:
    """Each plot's title and its bars (label, pairs)."""
    return [{"key": key, "title": title, "rows": _bars(key, card.get(key, {}))} for key, title in PLOTS]


def _plot_data(plots: list[dict]) -> dict:
    """What static/js/datasets.js draws: per plot, its labels and values."""
    return {plot["key"]: {"title": plot["title"], "labels": [label for label, _ in plot["rows"]],
                          "values": [count for _, count in plot["rows"]]} for plot in plots}


def _number(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _queue_rows(card: dict) -> list[dict]:
    return [{"queue": row.get("queue"), "name": row.get("name", ""), "overlap": row.get("overlap"),
             "quorum": row.get("quorum"), "verdicts": row.get("verdicts", 0), "items_rated": row.get("items_rated"),
             "percent_agreement": "–" if row.get("percent_agreement") is None
             else f"{100 * row['percent_agreement']:.1f} %",
             "fleiss_kappa": _number(row.get("fleiss_kappa")),
             "krippendorff_alpha": _number(row.get("krippendorff_alpha"))} for row in card.get("queues", [])]


@dataclass(frozen=True)
class DiffRow:
    kind: str
    label: str
    count: int
    ids: list[int]

    @property
    def more(self) -> int:
        return max(0, self.count - len(self.ids))


def _diff_rows(diff: dict) -> list[DiffRow]:
    if not diff:
        return []
    labels = (("added", "Added"), ("removed", "Removed"), ("relabelled", "Relabelled (other split or verification)"))
    return [DiffRow(kind, label, int(diff.get(kind, 0)), list(diff.get(f"{kind}_ids", []))[:DIFF_IDS_SHOWN])
            for kind, label in labels]


@dataclass(frozen=True)
class DownloadCell:
    version: DatasetVersion
    format: str
    format_label: str
    split: str
    rows: int
    export: DatasetExport | None
    stream: bool

    @property
    def key(self) -> str:
        return f"{self.format}-{self.split or 'all'}"

    @property
    def split_label(self) -> str:
        return Split(self.split).label if self.split else "All"

    @property
    def stream_url(self) -> str:
        url = reverse("api-dataset-version-download", args=[self.version.pk, self.format])
        return f"{url}?split={self.split}" if self.split else url

    @property
    def export_url(self) -> str | None:
        if self.export is None or self.export.status != ExportStatus.READY:
            return None
        return reverse("api-dataset-export-download", args=[self.export.pk])

    @property
    def hash_is_content_hash(self) -> bool:
        """The JSONL of every split is the canonical lines verbatim: its SHA-256 is the content hash."""
        return self.format == ExportFormat.JSONL and not self.split

    @property
    def poll(self) -> bool:
        return (self.export is not None and self.export.status == ExportStatus.BUILDING
                and _polls(self.export.job))


def _latest_exports(version: DatasetVersion) -> dict[tuple[str, str], DatasetExport]:
    exports = {}
    for export in version.exports.select_related("job").order_by("created_at", "pk"):
        exports[(export.format, export.split)] = export  # the latest per format and split wins
    return exports


def _cell(version: DatasetVersion, fmt: str, split: str, exports: dict) -> DownloadCell:
    return DownloadCell(version=version, format=fmt, format_label=ExportFormat(fmt).label, split=split,
                        rows=selected_count(version, split), export=exports.get((fmt, split)),
                        stream=streamable(version, fmt, split))


def _downloads(version: DatasetVersion) -> list[tuple[str, str, list[DownloadCell]]]:
    exports = _latest_exports(version)
    return [(fmt, ExportFormat(fmt).label, [_cell(version, fmt, split, exports) for split in DOWNLOAD_SPLITS])
            for fmt in ExportFormat.values]


def _detail_context(request, version: DatasetVersion) -> dict:
    context = {**_build_context(version), "criteria": _criteria_summary(request, version),
               "ratios": [(Split(split).label, version.ratios.get(split, 0.0)) for split in SPLITS],
               "splits": [(Split(split).label, version.card.get("split", {}).get(split, 0)) for split in SPLITS]}
    if version.status == VersionStatus.FROZEN:
        plots = _plots(version.card)
        context.update(plots=plots, plot_data=_plot_data(plots), queue_rows=_queue_rows(version.card),
                       diff_rows=_diff_rows(version.diff), downloads=_downloads(version),
                       download_splits=[Split(split).label if split else "All" for split in DOWNLOAD_SPLITS])
    return context


@dashboard_only
@require_GET
def version_detail(request, pk: int):
    version = _version(request, pk)
    return render(request, "datasets/version_detail.html", _detail_context(request, version))


@dashboard_only
@require_GET
def version_build_block(request, pk: int):
    """htmx, every few seconds while the version builds: the build job's progress. Once the version is frozen or
    failed the whole page reloads (HX-Refresh) to show the result; the returned block no longer polls."""
    version = _version(request, pk)
    response = render(request, "datasets/_build_progress.html", _build_context(version))
    if version.status != VersionStatus.BUILDING and _partial(request):
        response["HX-Refresh"] = "true"
    return response


def _export_choice(request, data) -> tuple[ExportForm, str, str]:
    form = ExportForm(data)
    if not form.is_valid():
        return form, "", ""
    return form, form.cleaned_data["format"], form.cleaned_data["split"] or ""


def _render_cell(request, cell: DownloadCell):
    return render(request, "datasets/_download.html", {"cell": cell})


@dashboard_only
@require_GET
def version_download_cell(request, pk: int):
    """htmx: one download button again (it polls while its export job runs)."""
    version = _version(request, pk)
    form, fmt, split = _export_choice(request, request.GET)
    if not form.is_valid() or version.status != VersionStatus.FROZEN:
        error = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        return render(request, "datasets/_download_error.html",
                      {"error": error or f"Dataset version “{version.name}” is not frozen."}, status=400)
    return _render_cell(request, _cell(version, fmt, split, _latest_exports(version)))


@dashboard_only
@require_POST
def version_export(request, pk: int):
    """The Export button of a download too large to stream: starts its export job (or finds the one running)."""
    version = _version(request, pk)
    detail_url = reverse("dataset-version-detail", args=[version.pk]) + "#downloads"
    form, fmt, split = _export_choice(request, request.POST)
    error = ""
    if not form.is_valid():
        error = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
    elif version.status != VersionStatus.FROZEN:
        error = f"Dataset version “{version.name}” is {version.status}; only frozen versions export."
    elif not streamable(version, fmt, split):  # a small one streams: the cell offers it, no job needed
        export, created = export_request(version=version, fmt=fmt, split=split, created_by=request.user)
        if not _partial(request):
            messages.success(request, f"{ExportFormat(fmt).label}, {split or 'all splits'}: export job "
                                      f"{export.job_id} {'started' if created else 'is running already'}.")
    if _partial(request):
        if error:
            return render(request, "datasets/_download_error.html", {"error": error}, status=400)
        return _render_cell(request, _cell(version, fmt, split, _latest_exports(version)))
    if error:
        messages.error(request, error)
    return redirect(detail_url)
