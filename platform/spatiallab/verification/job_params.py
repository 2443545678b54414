"""Parameters of the verification jobs (validated by the shared job service before a job is stored)."""

from rest_framework import serializers


class BuildQueueParams(serializers.Serializer):
    queue = serializers.IntegerField(help_text="Id of the queue (status building) whose items the job adds.")

    def validate_queue(self, value: int) -> int:
        from spatiallab.verification.models import QueueStatus, VerificationQueue

        if not VerificationQueue.objects.filter(pk=value, status=QueueStatus.BUILDING).exists():
            raise serializers.ValidationError(f"No queue {value} waiting to be built.")
        return value
