import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from spatiallab.accounts.roles import IsResearcher
from spatiallab.jobs.kinds import JOB_KINDS
from spatiallab.jobs.models import Job, JobStatus
from spatiallab.jobs.selectors import jobs_visible_to
from spatiallab.jobs.services import job_cancel, job_create


class JobSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True,
                                       read_only=True)
    percent = serializers.FloatField(read_only=True)
    eta_seconds = serializers.SerializerMethodField()
    rate_per_second = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id", "kind", "queue", "params", "status", "progress_done", "progress_total", "progress_message",
            "percent", "eta_seconds", "rate_per_second", "result", "error", "attempts", "max_attempts",
            "cancel_requested", "heartbeat_at", "created_by", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = fields

    def get_eta_seconds(self, job: Job) -> float | None:
        eta = job.eta()
        return None if eta is None else round(eta.total_seconds(), 1)

    def get_rate_per_second(self, job: Job) -> float | None:
        return job.rate_per_second()


class JobCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=sorted(JOB_KINDS))
    params = serializers.DictField(required=False, default=dict)


class JobFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=JobStatus.choices)
    kind = django_filters.CharFilter()

    class Meta:
        model = Job
        fields = ["status", "kind"]


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Jobs of every kind: list, inspect, launch and cancel."""

    serializer_class = JobSerializer
    permission_classes = [IsResearcher]
    filterset_class = JobFilter

    def get_queryset(self):
        return jobs_visible_to(self.request.user)

    @extend_schema(request=JobCreateSerializer, responses={201: JobSerializer})
    def create(self, request):
        payload = JobCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            job = job_create(created_by=request.user, **payload.validated_data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from exc
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = job_cancel(job=self.get_object())
        return Response(JobSerializer(job).data)
