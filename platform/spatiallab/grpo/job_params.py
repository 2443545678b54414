"""Parameters of the GRPO training job (validated by the shared job service before a job is stored)."""

from rest_framework import serializers


class TrainGrpoParams(serializers.Serializer):
    run = serializers.IntegerField(help_text="Id of the GRPO run to train.")
    resume = serializers.BooleanField(required=False, help_text="Continue from the run's last complete checkpoint.")

    def validate_run(self, value: int) -> int:
        from spatiallab.grpo.models import GrpoRun

        if not GrpoRun.objects.filter(pk=value).exists():
            raise serializers.ValidationError(f"No GRPO run {value}.")
        return value
