"""Who sees which reward runs: the research team (researchers and admins) sees all of them, annotators none."""

from django.db.models import Exists, OuterRef, QuerySet

from spatiallab.accounts.roles import DASHBOARD_ROLES, has_any_role
from spatiallab.rewards.models import PairScore, RewardCheckpoint, RewardEvaluation, RewardRun, ScoreRequest


def runs_visible_to(user) -> QuerySet[RewardRun]:
    queryset = RewardRun.objects.select_related("dataset_version", "job", "created_by")
    return queryset if has_any_role(user, DASHBOARD_ROLES) else queryset.none()


def checkpoints_visible_to(user) -> QuerySet[RewardCheckpoint]:
    """Newest run first, its latest checkpoint first."""
    queryset = RewardCheckpoint.objects.select_related("run").order_by("-run__created_at", "-run_id", "-step")
    return queryset if has_any_role(user, DASHBOARD_ROLES) else queryset.none()


def score_requests_visible_to(user) -> QuerySet[ScoreRequest]:
    queryset = ScoreRequest.objects.select_related("checkpoint__run", "generator", "job", "created_by")
    return queryset if has_any_role(user, DASHBOARD_ROLES) else queryset.none()


def evaluations_visible_to(user) -> QuerySet[RewardEvaluation]:
    queryset = RewardEvaluation.objects.select_related("run", "dataset_version", "job", "created_by")
    return queryset if has_any_role(user, DASHBOARD_ROLES) else queryset.none()


def pairs_with_verdict(pairs: QuerySet, checkpoint, verdict: str) -> QuerySet:
    """Pairs the checkpoint prefers the winner of ("agrees"), the loser of ("disagrees": a likely generator or
    perturbation failure, or a model error), or has not scored ("unscored")."""
    scores = PairScore.objects.filter(checkpoint=checkpoint, pair=OuterRef("pk"))
    if verdict == "agrees":
        return pairs.filter(Exists(scores.filter(margin__gt=0)))
    if verdict == "disagrees":
        return pairs.filter(Exists(scores.filter(margin__lte=0)))
    if verdict == "unscored":
        return pairs.exclude(Exists(scores))
    return pairs


def pair_scores_for(checkpoint, pair_ids) -> dict[int, PairScore]:
    return {score.pair_id: score for score in PairScore.objects.filter(checkpoint=checkpoint, pair_id__in=pair_ids)}
