"""Who sees which reward runs: the research team (researchers and admins) sees all of them, annotators none."""

from django.db.models import QuerySet

from spatiallab.accounts.roles import DASHBOARD_ROLES, has_any_role
from spatiallab.rewards.models import RewardRun


def runs_visible_to(user) -> QuerySet[RewardRun]:
    queryset = RewardRun.objects.select_related("dataset_version", "job", "created_by")
    return queryset if has_any_role(user, DASHBOARD_ROLES) else queryset.none()
