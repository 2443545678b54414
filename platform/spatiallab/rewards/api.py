"""REST endpoints for reward-model training runs (researchers and admins; annotators see none of it).

POST creates a run and its training job (a GPU job); a run's metric rows (the live curves) and its checkpoints
are sub-resources. Runs are never edited: a different configuration is a new run."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from spatiallab.accounts.roles import IsResearcher
from spatiallab.datasets.models import DatasetVersion
from spatiallab.prompts.api import service_errors
from spatiallab.rewards.models import MetricKind, RewardCheckpoint, RewardMetric, RewardRun
from spatiallab.rewards.selectors import runs_visible_to
from spatiallab.rewards.services import config_defaults, run_create


class RewardRunSerializer(serializers.ModelSerializer):
    dataset_version_name = serializers.CharField(source="dataset_version.name", read_only=True)
    config = serializers.DictField(read_only=True, help_text='{"model": ModelConfig, "train": TrainConfig}.')
    # A plain string: the job's status enum is already named after the job's component in the schema.
    status = serializers.CharField(read_only=True,
                                   help_text="queued, running, succeeded, failed or cancelled (mirrors the job).")
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True, allow_null=True)
    progress_done = serializers.IntegerField(source="job.progress_done", default=None, read_only=True,
                                             allow_null=True, help_text="Optimizer steps done.")
    progress_total = serializers.IntegerField(source="job.progress_total", default=None, read_only=True,
                                              allow_null=True, help_text="Optimizer steps planned.")

    class Meta:
        model = RewardRun
        fields = ["id", "name", "dataset_version", "dataset_version_name", "dataset_hash", "base_model", "config",
                  "code_version", "status", "job", "progress_done", "progress_total", "output_dir", "created_by",
                  "created_at"]
        read_only_fields = fields


class RewardRunCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    dataset_version = serializers.PrimaryKeyRelatedField(queryset=DatasetVersion.objects.all(),
                                                         help_text="A frozen dataset version.")
    base_model = serializers.CharField(max_length=1000, help_text="Local folder of the backbone (absolute, or "
                                                                  "relative to the models volume); holds config.json.")
    model = serializers.DictField(required=False, default=dict,
                                  help_text="ModelConfig settings over the paper's defaults (GET defaults/).")
    train = serializers.DictField(required=False, default=dict,
                                  help_text="TrainConfig settings over the paper's defaults (GET defaults/).")


class RewardDefaultsSerializer(serializers.Serializer):
    model = serializers.DictField(help_text="ModelConfig defaults (the backbone is the run's base model).")
    train = serializers.DictField(help_text="TrainConfig defaults (data, output_dir and resume are set by the job).")


class RewardMetricSerializer(serializers.ModelSerializer):
    values = serializers.DictField(read_only=True, help_text="loss, accuracy, lr, grad_norm, ... (train); "
                                                             "accuracy, loss, ... (eval).")

    class Meta:
        model = RewardMetric
        fields = ["step", "kind", "values"]
        read_only_fields = fields


class RewardCheckpointSerializer(serializers.ModelSerializer):
    metrics = serializers.DictField(read_only=True, help_text="The last train and eval metrics at this step.")

    class Meta:
        model = RewardCheckpoint
        fields = ["id", "step", "path", "metrics", "created_at"]
        read_only_fields = fields


KIND_PARAM = OpenApiParameter("kind", str, enum=[k.value for k in MetricKind], description="Only this kind.")
AFTER_PARAM = OpenApiParameter("after_step", int, description="Only steps after this one (for polling).")


@extend_schema(tags=["reward-runs"])
class RewardRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                       viewsets.GenericViewSet):
    """Reward-model training runs: list, create (a training job), read; metrics and checkpoints."""

    serializer_class = RewardRunSerializer
    permission_classes = [IsResearcher]

    def get_queryset(self):
        return runs_visible_to(self.request.user)

    @extend_schema(request=RewardRunCreateSerializer, responses={201: RewardRunSerializer})
    def create(self, request, *args, **kwargs):
        serializer = RewardRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with service_errors():
            run = run_create(name=data["name"], dataset_version=data["dataset_version"], base_model=data["base_model"],
                             model_config=dict(data["model"]), train_config=dict(data["train"]),
                             created_by=request.user)
        run = self.get_queryset().get(pk=run.pk)
        return Response(RewardRunSerializer(run, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(responses=RewardDefaultsSerializer, filters=False)
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def defaults(self, request):
        """The paper's defaults of every setting a run may change."""
        return Response(config_defaults())

    @extend_schema(parameters=[KIND_PARAM, AFTER_PARAM], responses=RewardMetricSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def metrics(self, request, pk=None):
        """Every metric row of the run in step order (the live curves); poll with after_step."""
        run = self.get_object()
        rows = RewardMetric.objects.filter(run=run)
        kind = request.query_params.get("kind")
        if kind:
            if kind not in MetricKind.values:
                raise serializers.ValidationError({"kind": [f"Must be one of {', '.join(MetricKind.values)}."]})
            rows = rows.filter(kind=kind)
        after = request.query_params.get("after_step")
        if after not in (None, ""):
            try:
                after_step = int(after)
            except ValueError:
                raise serializers.ValidationError({"after_step": ["Must be an integer."]}) from None
            rows = rows.filter(step__gt=after_step)
        return Response(RewardMetricSerializer(rows.order_by("step", "kind"), many=True).data)

    @extend_schema(responses=RewardCheckpointSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def checkpoints(self, request, pk=None):
        """The run's complete checkpoints (pruned ones are gone), oldest first."""
        run = self.get_object()
        return Response(RewardCheckpointSerializer(run.checkpoints.order_by("step"), many=True).data)
