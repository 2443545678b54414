"""Parameters of the reward-training job (validated by the shared job service before a job is stored)."""

from rest_framework import serializers


class TrainRewardParams(serializers.Serializer):
    run = serializers.IntegerField(help_text="Id of the reward run to train (or resume).")

    def validate_run(self, value: int) -> int:
        from spatiallab.rewards.models import RewardRun

        if not RewardRun.objects.filter(pk=value).exists():
            raise serializers.ValidationError(f"No reward run {value}.")
        return value
