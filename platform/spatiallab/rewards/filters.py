"""Filters of the reward endpoints (django-filter)."""

import django_filters

from spatiallab.prompts.filters import IntFilter
from spatiallab.rewards.models import RewardCheckpoint, RewardEvaluation


class RewardCheckpointFilter(django_filters.FilterSet):
    run = IntFilter(field_name="run_id", label="Reward run id")

    class Meta:
        model = RewardCheckpoint
        fields = ["run"]


class RewardEvaluationFilter(django_filters.FilterSet):
    run = IntFilter(field_name="run_id", label="Reward run id")
    checkpoint = IntFilter(field_name="checkpoint_id", label="Reward checkpoint id")
    dataset_version = IntFilter(field_name="dataset_version_id", label="Dataset version id")
    split = django_filters.CharFilter(label="Split evaluated ('' is every entry)")

    class Meta:
        model = RewardEvaluation
        fields = ["run", "checkpoint", "dataset_version", "split"]
