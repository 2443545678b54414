"""Who sees which GRPO runs: the research team (researchers and admins) sees all of them, annotators none."""

from django.db.models import QuerySet

from spatiallab.accounts.roles import DASHBOARD_ROLES, has_any_role
from spatiallab.grpo.models import GrpoCheckpoint, GrpoRun, GrpoSample


def runs_visible_to(user) -> QuerySet[GrpoRun]:
    queryset = GrpoRun.objects.select_related("generator", "reward_checkpoint__run", "train_prompt_set",
                                              "eval_prompt_set", "job", "created_by")
    return queryset if has_any_role(user, DASHBOARD_ROLES) else queryset.none()


def checkpoints_visible_to(user) -> QuerySet[GrpoCheckpoint]:
    queryset = GrpoCheckpoint.objects.select_related("run", "generator").order_by("-run_id", "-step")
    return queryset if has_any_role(user, DASHBOARD_ROLES) else queryset.none()


def samples_visible_to(user) -> QuerySet[GrpoSample]:
    queryset = GrpoSample.objects.all()
    return queryset if has_any_role(user, DASHBOARD_ROLES) else queryset.none()


def gallery(run: GrpoRun, step: int | None) -> tuple[list[int], int | None, list[dict]]:
    """The evaluation steps that have images, the step compared with the base (the given one, else the latest)
    and one row per (prompt, seed): its base sample (step 0) and its sample at that step."""
    steps = sorted(set(GrpoSample.objects.filter(run=run).values_list("step", flat=True)))
    later = [s for s in steps if s > 0]
    chosen = step if step in later else (later[-1] if later else None)
    wanted = [0] + ([chosen] if chosen is not None else [])
    rows: dict[tuple[int, int], dict] = {}
    for sample in GrpoSample.objects.filter(run=run, step__in=wanted).order_by("prompt_index", "seed", "step"):
        row = rows.setdefault((sample.prompt_index, sample.seed), {"prompt": sample.prompt, "seed": sample.seed,
                                                                   "base": None, "current": None})
        row["base" if sample.step == 0 else "current"] = sample
    return steps, chosen, list(rows.values())
