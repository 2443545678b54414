"""Reads for generation: the work of a generation job, and pairs for the gallery and the API."""

from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet

from spatiallab.accounts.roles import DASHBOARD_ROLES, has_any_role
from spatiallab.generation.models import GenerationFailure, Generator, Pair
from spatiallab.jobs.models import Job
from spatiallab.jobs.selectors import jobs_visible_to
from spatiallab.prompts.models import PerturbationEdit, PerturbedPrompt


def _team(user) -> bool:
    """Generators, pairs and failures belong to the research team; annotators reach pairs only through their
    verification queues (which never say which image came from the perfect prompt)."""
    return has_any_role(user, DASHBOARD_ROLES)


def generators_visible_to(user) -> QuerySet[Generator]:
    return Generator.objects.all() if _team(user) else Generator.objects.none()


def generators_with_pair_counts(user) -> QuerySet[Generator]:
    return generators_visible_to(user).select_related("created_by").annotate(pair_count=Count("pairs"))


def generation_runs(user, prompt_set_id: int, *, limit: int) -> list[Job]:
    """The latest generation jobs of a prompt set (the job's params hold the set's id)."""
    return list(jobs_visible_to(user).filter(kind="generate_pairs", params__prompt_set=prompt_set_id)
                .order_by("-created_at", "-pk")[:limit])


def generators_enabled() -> QuerySet[Generator]:
    return Generator.objects.filter(enabled=True)


def _edits_prefetch() -> Prefetch:
    return Prefetch("edits", queryset=PerturbationEdit.objects.select_related("rule").order_by("position"))


def generation_work(params: dict) -> QuerySet[PerturbedPrompt]:
    """The perturbed prompts a generation job renders, in the order it renders them (by id)."""
    work = PerturbedPrompt.objects.filter(prompt__prompt_set_id=params["prompt_set"])
    if params.get("n_edits") == "1":
        work = work.filter(n_edits=1)
    elif params.get("n_edits") == "2-3":
        work = work.filter(n_edits__gte=2)
    if params.get("rules"):
        work = work.filter(Exists(PerturbationEdit.objects.filter(perturbed=OuterRef("pk"),
                                                                  rule_id__in=params["rules"])))
    return work.order_by("pk")


def generation_work_ids(params: dict) -> list[int]:
    ids = generation_work(params).values_list("pk", flat=True)
    return list(ids[: params["limit"]] if params.get("limit") else ids)


def perturbed_for_generation(ids) -> list[PerturbedPrompt]:
    """A chunk of the work with what rendering needs: both texts, the perfect prompt's graph, the edits."""
    return list(PerturbedPrompt.objects.filter(pk__in=list(ids)).select_related("prompt")
                .prefetch_related(_edits_prefetch()).order_by("pk"))


def pairs_visible_to(user) -> QuerySet[Pair]:
    return Pair.objects.all() if _team(user) else Pair.objects.none()


def pairs_filtered(queryset: QuerySet[Pair], *, job=None, generator=None, rule=None, n_edits=None,
                   prompt_set=None, ground_truth=None) -> QuerySet[Pair]:
    if job:
        queryset = queryset.filter(job_id=job)
    if generator:
        queryset = queryset.filter(generator_id=generator)
    if n_edits == "1" or n_edits == 1:
        queryset = queryset.filter(n_edits=1)
    elif n_edits == "2-3":
        queryset = queryset.filter(n_edits__gte=2)
    elif n_edits:
        queryset = queryset.filter(n_edits=n_edits)
    if prompt_set:
        queryset = queryset.filter(prompt__prompt_set_id=prompt_set)
    if rule:
        queryset = queryset.filter(Exists(PerturbationEdit.objects.filter(perturbed=OuterRef("perturbed_id"),
                                                                          rule_id=rule)))
    if ground_truth in (True, False):
        queryset = queryset.filter(ground_truth_ok=ground_truth)
    return queryset


def pairs_for_gallery(queryset: QuerySet[Pair]) -> QuerySet[Pair]:
    """Everything a gallery card shows, in a fixed number of queries whatever the page size."""
    return (queryset.select_related("generator", "perturbed", "prompt")
            .defer("prompt__graph", "prompt__normalized_text", "perturbed__normalized_text")
            .prefetch_related(Prefetch("perturbed__edits",
                                       queryset=PerturbationEdit.objects.select_related("rule").order_by("position")))
            .order_by("-id"))


def failures_visible_to(user) -> QuerySet[GenerationFailure]:
    return GenerationFailure.objects.all() if _team(user) else GenerationFailure.objects.none()
