"""Reads behind the prompt-set pages: lists, statistics for the plots, search, perturbed prompts; and the
highlighting of spans in prompt texts.

Every queryset starts from what the user may see (researchers and admins share one team view; nobody else sees
anything), and the statistics are computed by the database, so a set of 100 000 prompts costs the same few
queries as a set of ten.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Count, Exists, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

from spatiallab.accounts.roles import DASHBOARD_ROLES, has_any_role
from spatiallab.jobs.models import Job
from spatiallab.jobs.selectors import jobs_visible_to
from spatiallab.prompts.models import PerturbationEdit, PerturbationRule, PerturbedPrompt, Prompt, PromptSet

PERTURB_JOB_KIND = "perturb_prompt_set"
PROMPTS_PER_PAGE = 20
PERTURBED_PER_PAGE = 20
RECENT_RUNS = 10
# Histograms with more distinct values than this are drawn with wider bins (word counts spread widely).
MAX_BINS = 30


def _can_see(user) -> bool:
    return has_any_role(user, DASHBOARD_ROLES)


# --- Prompt sets -------------------------------------------------------------------------------------------


def prompt_sets_visible_to(user) -> QuerySet[PromptSet]:
    """Prompt sets with `prompt_count` and `perturbed_count`, counted by subqueries (not a join over both)."""
    if not _can_see(user):
        return PromptSet.objects.none()
    prompt_count = (
        Prompt.objects.filter(prompt_set=OuterRef("pk")).order_by().values("prompt_set")
        .annotate(n=Count("pk")).values("n")
    )
    perturbed_count = (
        PerturbedPrompt.objects.filter(prompt__prompt_set=OuterRef("pk")).order_by().values("prompt__prompt_set")
        .annotate(n=Count("pk")).values("n")
    )
    return PromptSet.objects.select_related("created_by").annotate(
        prompt_count=Coalesce(Subquery(prompt_count, output_field=IntegerField()), Value(0)),
        perturbed_count=Coalesce(Subquery(perturbed_count, output_field=IntegerField()), Value(0)),
    )


@dataclass
class Histogram:
    """Counts of prompts per value (or per bin of values): what one plot draws."""

    labels: list[str]
    counts: list[int]

    def as_dict(self) -> dict:
        return {"labels": self.labels, "counts": self.counts}

    @property
    def rows(self) -> list[tuple[str, int]]:
        return list(zip(self.labels, self.counts, strict=True))


def histogram(counter: Counter, *, max_bins: int = MAX_BINS) -> Histogram:
    """Every value from the smallest to the largest, empty ones included (a gap is information); with more
    than `max_bins` values, equal-width bins labelled "lo–hi"."""
    if not counter:
        return Histogram([], [])
    low, high = min(counter), max(counter)
    width = max(1, -(-(high - low + 1) // max_bins))  # ceiling division
    labels, counts = [], []
    for start in range(low, high + 1, width):
        end = min(start + width - 1, high)
        labels.append(str(start) if start == end else f"{start}–{end}")
        counts.append(sum(counter.get(value, 0) for value in range(start, end + 1)))
    return Histogram(labels, counts)


@dataclass
class PromptSetStats:
    prompts: int = 0
    objects: int = 0
    relations: int = 0
    words: int = 0
    with_unparsed: int = 0
    relations_per_prompt: Histogram = field(default_factory=lambda: Histogram([], []))
    words_per_prompt: Histogram = field(default_factory=lambda: Histogram([], []))
    objects_per_prompt: Histogram = field(default_factory=lambda: Histogram([], []))
    relation_kinds: Histogram = field(default_factory=lambda: Histogram([], []))

    def mean(self, total: int) -> float:
        return total / self.prompts if self.prompts else 0.0

    @property
    def mean_objects(self) -> float:
        return self.mean(self.objects)

    @property
    def mean_relations(self) -> float:
        return self.mean(self.relations)

    @property
    def mean_words(self) -> float:
        return self.mean(self.words)

    def plots(self) -> dict:
        """The data of the four plots, for json_script."""
        return {
            "relations": self.relations_per_prompt.as_dict(),
            "words": self.words_per_prompt.as_dict(),
            "objects": self.objects_per_prompt.as_dict(),
            "relation_kinds": self.relation_kinds.as_dict(),
        }


def relation_kind_totals(prompt_set: PromptSet) -> dict[str, int]:
    """Relation kind -> how many relations of that kind the set's prompts hold, summed by the database from each
    prompt's `relation_kinds` object (one row per kind comes back, not one per prompt)."""
    table = connection.ops.quote_name(Prompt._meta.db_table)
    column = connection.ops.quote_name(Prompt._meta.get_field("relation_kinds").column)
    set_column = connection.ops.quote_name(Prompt._meta.get_field("prompt_set").column)
    if connection.vendor == "sqlite":
        sql = (f"SELECT kinds.key, SUM(kinds.value) FROM {table}, json_each({table}.{column}) AS kinds "
               f"WHERE {table}.{set_column} = %s GROUP BY kinds.key")
    elif connection.vendor == "postgresql":
        sql = (f"SELECT kinds.key, SUM(kinds.value::integer) FROM {table} "
               f"CROSS JOIN LATERAL jsonb_each_text({table}.{column}) AS kinds "
               f"WHERE {table}.{set_column} = %s GROUP BY kinds.key")
    else:  # other databases: add up in Python, still one query and no graphs loaded
        totals: Counter = Counter()
        for kinds in Prompt.objects.filter(prompt_set=prompt_set).values_list("relation_kinds", flat=True):
            totals.update(kinds or {})
        return dict(totals)
    with connection.cursor() as cursor:
        cursor.execute(sql, [prompt_set.pk])
        return {key: int(total) for key, total in cursor.fetchall()}


def prompt_set_stats(prompt_set: PromptSet) -> PromptSetStats:
    """The set's numbers and the data of its four plots, in two queries: one GROUP BY over the integer stat
    columns (one row per distinct combination, however many prompts), one sum of the relation kinds."""
    rows = (
        Prompt.objects.filter(prompt_set=prompt_set).order_by()
        .values_list("relation_count", "object_count", "word_count", "unparsed_count")
        .annotate(n=Count("pk"))
    )
    stats = PromptSetStats()
    relations, objects, words = Counter(), Counter(), Counter()
    for relation_count, object_count, word_count, unparsed_count, n in rows:
        stats.prompts += n
        stats.relations += relation_count * n
        stats.objects += object_count * n
        stats.words += word_count * n
        stats.with_unparsed += n if unparsed_count else 0
        relations[relation_count] += n
        objects[object_count] += n
        words[word_count] += n
    stats.relations_per_prompt = histogram(relations)
    stats.objects_per_prompt = histogram(objects)
    stats.words_per_prompt = histogram(words)
    kinds = sorted(relation_kind_totals(prompt_set).items(), key=lambda item: (-item[1], item[0]))
    stats.relation_kinds = Histogram([kind for kind, _ in kinds], [total for _, total in kinds])
    return stats


def prompt_set_relation_kinds(prompt_set: PromptSet) -> list[str]:
    return sorted(relation_kind_totals(prompt_set))


# --- Searching prompts --------------------------------------------------------------------------------------

PROMPT_LIST_FIELDS = ("pk", "prompt_set_id", "position", "text", "graph", "category", "source_line",
                      "object_count", "relation_count", "unparsed_count", "word_count")


def prompts_search(prompt_set: PromptSet, *, query: str = "", relation_kind: str = "") -> QuerySet[Prompt]:
    """The set's prompts holding every word of `query` (any case), and a relation of `relation_kind` if given,
    in their order in the set."""
    prompts = Prompt.objects.filter(prompt_set=prompt_set).only(*PROMPT_LIST_FIELDS).order_by("position")
    for word in query.split()[:10]:
        prompts = prompts.filter(text__icontains=word)
    if relation_kind:
        prompts = prompts.filter(relation_kinds__has_key=relation_kind)
    return prompts


def paginate(queryset, *, page: str | int | None, per_page: int) -> Page:
    """A page of the queryset; a page number out of range or not a number gives the nearest valid page."""
    return Paginator(queryset, per_page).get_page(page)


# --- Perturbation runs and perturbed prompts ---------------------------------------------------------------


def perturbation_runs(user, prompt_set: PromptSet, *, limit: int = RECENT_RUNS) -> list[Job]:
    return list(
        jobs_visible_to(user).filter(kind=PERTURB_JOB_KIND, params__prompt_set=prompt_set.pk)
        .order_by("-created_at", "-pk")[:limit]
    )


def perturbed_count(prompt_set: PromptSet) -> int:
    return PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).count()


def rules_enabled() -> QuerySet[PerturbationRule]:
    return PerturbationRule.objects.filter(enabled=True).order_by("name")


def rules_all() -> QuerySet[PerturbationRule]:
    return PerturbationRule.objects.select_related("created_by").order_by("name")


def perturbed_prompts(
    prompt_set: PromptSet, *, rule_id: int | None = None, n_edits: int | None = None, relation_kind: str = ""
) -> QuerySet[PerturbedPrompt]:
    """Perturbed prompts of the set with their prompt and edits (prefetched, with the edits' rules). The rule
    and relation-kind filters keep a perturbed prompt when any of its edits matches (EXISTS: no duplicates)."""
    edits = PerturbationEdit.objects.select_related("rule").order_by("position")
    perturbed = (
        PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set)
        .select_related("prompt")
        .defer("prompt__graph", "prompt__normalized_text", "normalized_text")
        .prefetch_related(Prefetch("edits", queryset=edits))
        .order_by("prompt__position", "pk")
    )
    if n_edits:
        perturbed = perturbed.filter(n_edits=n_edits)
    matching = Q()
    if rule_id:
        matching &= Q(rule_id=rule_id)
    if relation_kind:
        matching &= Q(relation_kind=relation_kind)
    if rule_id or relation_kind:
        perturbed = perturbed.filter(Exists(PerturbationEdit.objects.filter(matching, perturbed=OuterRef("pk"))))
    return perturbed


def perturbed_relation_kinds(prompt_set: PromptSet) -> list[str]:
    return list(
        PerturbationEdit.objects.filter(perturbed__prompt__prompt_set=prompt_set).order_by("relation_kind")
        .values_list("relation_kind", flat=True).distinct()
    )


# --- Highlighting ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """A span of a text to highlight: [start, end), a CSS class and a tooltip."""

    start: int
    end: int
    css: str
    title: str = ""


def highlight(text: str, marks: Iterable[Mark]) -> SafeString:
    """`text` with each mark wrapped in <mark>. The text is cut at the span boundaries and every piece is
    escaped on its own, so the result is safe whatever the text holds. Spans outside the text are clipped;
    where spans overlap, the earlier one wins and the later one starts after it."""
    pieces: list[str] = []
    cursor = 0
    for mark in sorted(marks, key=lambda m: (m.start, -m.end)):
        start, end = max(mark.start, cursor, 0), min(mark.end, len(text))
        if start >= end:
            continue
        pieces.append(conditional_escape(text[cursor:start]))
        title = format_html(' title="{}"', mark.title) if mark.title else ""
        pieces.append(format_html('<mark class="{}"{}>{}</mark>', mark.css, title, text[start:end]))
        cursor = end
    pieces.append(conditional_escape(text[cursor:]))
    return mark_safe("".join(pieces))  # every piece above is escaped (conditional_escape or format_html)


def _span(value) -> tuple[int, int] | None:
    """[start, end] from a stored span (a list, or a Span-like object); None when missing or malformed."""
    if value is None:
        return None
    if hasattr(value, "start") and hasattr(value, "end"):
        return int(value.start), int(value.end)
    try:
        start, end = value
        return int(start), int(end)
    except (TypeError, ValueError):
        return None


def graph_marks(graph: dict) -> list[Mark]:
    """Marks for a stored scene graph: each relation phrase (by kind), each span the parser could not read."""
    marks = []
    for relation in (graph or {}).get("relations", []):
        span = _span(relation.get("span"))
        if span:
            kind = str(relation.get("kind", ""))
            marks.append(Mark(*span, css=f"rel rel-{kind}", title=kind.replace("_", " ")))
    for raw in (graph or {}).get("unparsed", []):
        span = _span(raw)
        if span:
            marks.append(Mark(*span, css="unparsed", title="not understood by the parser"))
    return marks


def prompt_html(prompt: Prompt) -> SafeString:
    return highlight(prompt.text, graph_marks(prompt.graph))


def _object_name(key) -> str:
    """An object key [name, attributes, count] as words: "red mug", "2 × book"."""
    try:
        name, attributes, count = key
    except (TypeError, ValueError):
        return str(key)
    words = ([f"{count} ×"] if count and count != 1 else []) + [str(a) for a in attributes or ()] + [str(name)]
    return " ".join(words)


def relation_label(relation: dict | None) -> str:
    """A relation as people read it, from its stored dict: "left of(red mug, laptop)", with the object keys the
    engine adds where present (ids otherwise) and the parameter of sequences, extremes and alignments."""
    if not relation:
        return "–"
    kind = str(relation.get("kind", "?")).replace("_", " ")
    if relation.get("subject_key") is not None or relation.get("anchor_keys"):
        subject = [relation["subject_key"]] if relation.get("subject_key") is not None else []
        names = [_object_name(key) for key in subject + list(relation.get("anchor_keys") or [])]
    else:
        names = [str(n) for n in [relation.get("subject"), *(relation.get("anchors") or [])] if n]
    param = f" [{str(relation['param']).replace('_', ' ')}]" if relation.get("param") else ""
    return f"{kind}({', '.join(names)}){param}"


@dataclass(frozen=True)
class EditView:
    rule: str
    relation_kind: str
    before: str
    after: str
    before_text: str = ""  # the relation's phrase, where the engine gives it
    after_text: str = ""


@dataclass(frozen=True)
class Comparison:
    """Original and perturbed text side by side, each with its changed spans marked, and the edit list."""

    original_html: SafeString
    perturbed_html: SafeString
    edits: list[EditView]


def comparison(original: str, perturbed: str, edits: Sequence) -> Comparison:
    """From stored PerturbationEdit rows or the ml Perturbation's edits (span_before/span_after, relation
    dicts): both have the same attribute names."""
    before_marks, after_marks, views = [], [], []
    for number, edit in enumerate(edits, start=1):
        rule = getattr(edit, "rule", None)
        rule_name = getattr(rule, "name", None) or (rule if isinstance(rule, str) else "") or getattr(
            edit, "rule_kind", "")
        relation_before = getattr(edit, "relation_before", None) or {}
        relation_after = getattr(edit, "relation_after", None) or {}
        title = f"edit {number}: {rule_name}"
        span = _span(getattr(edit, "span_before", None))
        if span:
            before_marks.append(Mark(*span, css="edit", title=title))
        span = _span(getattr(edit, "span_after", None))
        if span:
            after_marks.append(Mark(*span, css="edit", title=title))
        views.append(EditView(
            rule=str(rule_name),
            relation_kind=str(getattr(edit, "relation_kind", "") or relation_before.get("kind", "")),
            before=relation_label(relation_before),
            after=relation_label(relation_after),
            before_text=str(relation_before.get("text") or ""),
            after_text=str(relation_after.get("text") or ""),
        ))
    return Comparison(highlight(original, before_marks), highlight(perturbed, after_marks), views)
