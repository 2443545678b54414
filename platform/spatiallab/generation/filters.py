"""Filters of the generation endpoints (django-filter): the same slices as the gallery page."""

import django_filters
from django.db.models import QuerySet

from spatiallab.generation.models import Backend, GenerationFailure, Generator, Pair
from spatiallab.generation.selectors import pairs_filtered
from spatiallab.prompts.filters import IntFilter


class GeneratorFilter(django_filters.FilterSet):
    backend = django_filters.ChoiceFilter(choices=Backend.choices)
    enabled = django_filters.BooleanFilter()

    class Meta:
        model = Generator
        fields = ["backend", "enabled"]


class PairFilter(django_filters.FilterSet):
    job = IntFilter(field_name="job_id", label="Generation job id")
    generator = IntFilter(field_name="generator_id", label="Generator id")
    prompt_set = IntFilter(method="filter_prompt_set", label="Prompt set id")
    perturbed = IntFilter(field_name="perturbed_id", label="Perturbed prompt id")
    rule = IntFilter(method="filter_rule", label="Perturbation rule id (any edit of the pair)")
    n_edits = django_filters.ChoiceFilter(choices=[("1", "1"), ("2-3", "2-3")], method="filter_n_edits",
                                          label="Edits: the paper's subsets")
    ground_truth_ok = django_filters.BooleanFilter(
        label="Scene renderer ground truth: winner follows the prompt and loser does not")

    class Meta:
        model = Pair
        fields = ["job", "generator", "perturbed", "ground_truth_ok"]

    def filter_prompt_set(self, queryset: QuerySet, name: str, value: int) -> QuerySet:
        return pairs_filtered(queryset, prompt_set=value)

    def filter_rule(self, queryset: QuerySet, name: str, value: int) -> QuerySet:
        return pairs_filtered(queryset, rule=value)

    def filter_n_edits(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return pairs_filtered(queryset, n_edits=value)


class GenerationFailureFilter(django_filters.FilterSet):
    job = IntFilter(field_name="job_id")
    generator = IntFilter(field_name="generator_id")

    class Meta:
        model = GenerationFailure
        fields = ["job", "generator"]
