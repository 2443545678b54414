"""Filters of the prompt endpoints (django-filter): what researchers slice prompt sets and perturbations by."""

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, QuerySet
from drf_spectacular.utils import extend_schema_field

from ml.spatial.graph import RelationKind
from spatiallab.prompts.models import PerturbationEdit, PerturbedPrompt, Prompt, PromptSet, RuleKind
from spatiallab.prompts.services import EDIT_SUBSETS, normalize_prompt

RELATION_KIND_CHOICES = [(kind.value, kind.value) for kind in RelationKind]


# A 64-bit column's range: a bigger number is a 400 naming the filter, never an overflow in the database driver.
MIN_DB_INT, MAX_DB_INT = -(2**63), 2**63 - 1


@extend_schema_field({"type": "integer", "format": "int64", "minimum": MIN_DB_INT, "maximum": MAX_DB_INT})
class IntFilter(django_filters.NumberFilter):
    """A whole number: an id or a count (NumberFilter alone accepts 1.5 and documents a float)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", MIN_DB_INT)
        kwargs.setdefault("max_value", MAX_DB_INT)
        super().__init__(*args, **kwargs)


class PromptSetFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")
    source = django_filters.CharFilter(lookup_expr="istartswith", label="Source starts with (upload, generator)")

    class Meta:
        model = PromptSet
        fields = ["q", "source"]


class PromptFilter(django_filters.FilterSet):
    prompt_set = IntFilter(field_name="prompt_set_id", label="Prompt set id")
    min_relations = IntFilter(field_name="relation_count", lookup_expr="gte")
    max_relations = IntFilter(field_name="relation_count", lookup_expr="lte")
    min_objects = IntFilter(field_name="object_count", lookup_expr="gte")
    max_objects = IntFilter(field_name="object_count", lookup_expr="lte")
    relation_kind = django_filters.MultipleChoiceFilter(
        choices=RELATION_KIND_CHOICES, method="filter_relation_kind",
        label="Relation kind present (repeat for several: every one must be present)",
    )
    category = django_filters.CharFilter()
    has_unparsed = django_filters.BooleanFilter(method="filter_has_unparsed",
                                                label="Some text the parser could not read")
    q = django_filters.CharFilter(method="filter_text", label="Text contains (case and spacing ignored)")

    class Meta:
        model = Prompt
        fields = ["prompt_set", "category"]

    def filter_relation_kind(self, queryset: QuerySet, name: str, values: list[str]) -> QuerySet:
        # has_key works the same on SQLite's JSON1 and PostgreSQL's jsonb; the dict only holds kinds present.
        for value in values:
            queryset = queryset.filter(relation_kinds__has_key=value)
        return queryset

    def filter_has_unparsed(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        return queryset.filter(unparsed_count__gt=0) if value else queryset.filter(unparsed_count=0)

    def filter_text(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(normalized_text__icontains=normalize_prompt(value))


class PerturbedPromptFilter(django_filters.FilterSet):
    """The edit filters (rule, rule_kind, relation_kind) are combined: `?rule=3&relation_kind=left_of` keeps the
    perturbed prompts where rule 3 changed a left_of relation, not ones where rule 3 changed something and some
    other edit touched a left_of. An EXISTS subquery does this without joining edits, so no row repeats."""

    EDIT_FIELDS = {"rule": "rule_id", "rule_kind": "rule_kind", "relation_kind": "relation_kind"}

    prompt_set = IntFilter(field_name="prompt__prompt_set_id", label="Prompt set id")
    prompt = IntFilter(field_name="prompt_id", label="Prompt id")
    n_edits = IntFilter()
    edits = django_filters.ChoiceFilter(choices=[(s, s) for s in EDIT_SUBSETS], method="filter_edit_subset",
                                        label="Benchmark subset: 1 edit, or 2-3 edits")
    rule = IntFilter(method="filter_on_edits", label="Id of a rule that made one of the edits")
    rule_kind = django_filters.ChoiceFilter(choices=RuleKind.choices, method="filter_on_edits")
    relation_kind = django_filters.ChoiceFilter(choices=RELATION_KIND_CHOICES, method="filter_on_edits",
                                                label="Kind of a relation that an edit changed")
    job = IntFilter(field_name="job_id", label="Id of the job that made it")

    class Meta:
        model = PerturbedPrompt
        fields = ["prompt_set", "prompt", "n_edits", "job"]

    def filter_edit_subset(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(n_edits__in=EDIT_SUBSETS[value])

    def filter_on_edits(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset  # applied together in filter_queryset

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = super().filter_queryset(queryset)
        conditions = {
            column: self.form.cleaned_data[name]
            for name, column in self.EDIT_FIELDS.items()
            if self.form.cleaned_data.get(name) not in (None, "")
        }
        if conditions:
            edits = PerturbationEdit.objects.filter(perturbed=OuterRef("pk"), **conditions)
            queryset = queryset.filter(Exists(edits))
        return queryset
