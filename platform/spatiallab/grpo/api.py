"""REST endpoints for Flow-GRPO runs (researchers and admins; annotators see none of it).

POST creates a run and its training job (a GPU job); its metric rows (the live curves), checkpoints and
evaluation samples (the gallery) are sub-resources; a checkpoint registers as a new generator."""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from spatiallab.accounts.roles import IsResearcher
from spatiallab.core.openapi import FIELD_ERRORS
from spatiallab.generation.models import Generator
from spatiallab.grpo.models import GrpoCheckpoint, GrpoMetric, GrpoRun, GrpoSample
from spatiallab.grpo.selectors import checkpoints_visible_to, runs_visible_to
from spatiallab.grpo.services import (
    checkpoint_register_generator,
    config_defaults,
    run_cancel,
    run_create,
    run_resume,
)
from spatiallab.jobs.models import MetricKind
from spatiallab.prompts.api import service_errors
from spatiallab.prompts.filters import MAX_DB_INT, MIN_DB_INT
from spatiallab.prompts.models import PromptSet
from spatiallab.rewards.models import RewardCheckpoint


class GrpoRunSerializer(serializers.ModelSerializer):
    generator_name = serializers.CharField(source="generator.name", read_only=True)
    config = serializers.DictField(read_only=True, help_text="GRPOConfig settings (platform-managed ones left out).")
    status = serializers.CharField(read_only=True,
                                   help_text="queued, running, succeeded, failed or cancelled (mirrors the job).")
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True, allow_null=True)
    progress_done = serializers.IntegerField(source="job.progress_done", default=None, read_only=True,
                                             allow_null=True, help_text="GRPO steps done.")
    progress_total = serializers.IntegerField(source="job.progress_total", default=None, read_only=True,
                                              allow_null=True, help_text="GRPO steps planned.")

    class Meta:
        model = GrpoRun
        fields = ["id", "name", "generator", "generator_name", "base_model", "reward", "reward_checkpoint",
                  "reward_model", "train_prompt_set", "eval_prompt_set", "config", "code_version", "status", "job",
                  "progress_done", "progress_total", "output_dir", "created_by", "created_at"]
        read_only_fields = fields


class GrpoRunCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    generator = serializers.PrimaryKeyRelatedField(queryset=Generator.objects.all(),
                                                   help_text="The base generator (diffusers backend, no LoRA).")
    reward_checkpoint = serializers.PrimaryKeyRelatedField(
        queryset=RewardCheckpoint.objects.all(), required=False, allow_null=True,
        help_text="A SpatialScore checkpoint as the reward (or give `reward`).")
    reward = serializers.CharField(max_length=100, required=False, allow_blank=True, default="",
                                   help_text="A programmatic reward's name (brightness-left-right, brightness).")
    train_prompt_set = serializers.PrimaryKeyRelatedField(queryset=PromptSet.objects.all())
    eval_prompt_set = serializers.PrimaryKeyRelatedField(queryset=PromptSet.objects.all(),
                                                         help_text="Held-out prompts for the evaluations.")
    config = serializers.DictField(required=False, default=dict,
                                   help_text="GRPOConfig settings over the paper's defaults (GET defaults/).")


class GrpoMetricSerializer(serializers.ModelSerializer):
    # A plain string: the reward runs' metric kind enum already holds the name in the schema.
    kind = serializers.CharField(read_only=True, help_text="train or eval.")
    values = serializers.DictField(read_only=True, help_text="reward_mean, reward_std, kl, clip_fraction, NFEs, ... "
                                                             "(train); reward_mean, reward_std, rewards (eval).")

    class Meta:
        model = GrpoMetric
        fields = ["step", "kind", "values"]
        read_only_fields = fields


class GrpoCheckpointSerializer(serializers.ModelSerializer):
    metrics = serializers.DictField(read_only=True, help_text="The last train and eval metrics at this step.")
    generator_name = serializers.CharField(source="generator.name", default=None, read_only=True, allow_null=True)

    class Meta:
        model = GrpoCheckpoint
        fields = ["id", "run", "step", "path", "metrics", "generator", "generator_name", "created_at"]
        read_only_fields = fields


class GrpoSampleSerializer(serializers.ModelSerializer):
    image_url = serializers.SerializerMethodField(help_text="The image's bytes (GET, signed-in session).")

    class Meta:
        model = GrpoSample
        fields = ["id", "step", "prompt_index", "prompt", "seed", "image", "image_url", "reward"]
        read_only_fields = fields

    def get_image_url(self, sample) -> str:
        return reverse("grpo-sample-image", args=[sample.pk])


class RegisteredGeneratorSerializer(serializers.Serializer):
    generator = serializers.IntegerField(help_text="The generator's id.")
    name = serializers.CharField()
    created = serializers.BooleanField(help_text="False: registered before; this is the same generator.")
    settings = serializers.DictField(help_text="The base generator's settings plus lora.")


KIND_PARAM = OpenApiParameter("kind", str, enum=[k.value for k in MetricKind], description="Only this kind.")
AFTER_PARAM = OpenApiParameter("after_step", int, description="Only steps after this one (for polling).")
STEP_PARAM = OpenApiParameter("step", int, description="Only this evaluation step (0: the base model).")


def _int_param(request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise serializers.ValidationError({name: ["Must be an integer."]}) from None
    if not MIN_DB_INT <= number <= MAX_DB_INT:
        raise serializers.ValidationError({name: ["Out of range."]})
    return number


@extend_schema(tags=["grpo-runs"])
class GrpoRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                     viewsets.GenericViewSet):
    """Flow-GRPO runs: list, create (a training job), read; metrics, checkpoints, evaluation samples."""

    serializer_class = GrpoRunSerializer
    permission_classes = [IsResearcher]

    def get_queryset(self):
        return runs_visible_to(self.request.user)

    @extend_schema(request=GrpoRunCreateSerializer, responses={201: GrpoRunSerializer})
    def create(self, request, *args, **kwargs):
        serializer = GrpoRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with service_errors():
            run = run_create(name=data["name"], generator=data["generator"],
                             reward_checkpoint=data.get("reward_checkpoint"), reward=data.get("reward") or "",
                             train_prompt_set=data["train_prompt_set"], eval_prompt_set=data["eval_prompt_set"],
                             config=dict(data["config"]), created_by=request.user)
        run = self.get_queryset().get(pk=run.pk)
        return Response(GrpoRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: GrpoRunSerializer, 400: FIELD_ERRORS}, filters=False)
    @action(detail=True, methods=["post"], filter_backends=[])
    def cancel(self, request, pk=None):
        """Stops the training job (the checkpoints written so far stay; resume continues from the last one)."""
        with service_errors():
            run = run_cancel(run=self.get_object())
        return Response(GrpoRunSerializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(request=None, responses={202: GrpoRunSerializer, 400: FIELD_ERRORS}, filters=False)
    @action(detail=True, methods=["post"], filter_backends=[])
    def resume(self, request, pk=None):
        """A new training job for a cancelled or failed run, continuing from its last complete checkpoint."""
        with service_errors():
            run = run_resume(run=self.get_object(), created_by=request.user)
        return Response(GrpoRunSerializer(self.get_queryset().get(pk=run.pk)).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=OpenApiTypes.OBJECT, filters=False)
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def defaults(self, request):
        """The paper's defaults of every setting a run may change (G 24, k 6, 6 steps, lr 3e-4, ...)."""
        return Response(config_defaults())

    @extend_schema(parameters=[KIND_PARAM, AFTER_PARAM], responses=GrpoMetricSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def metrics(self, request, pk=None):
        """Every metric row of the run in step order (the live curves); poll with after_step."""
        run = self.get_object()
        rows = GrpoMetric.objects.filter(run=run)
        kind = request.query_params.get("kind")
        if kind:
            if kind not in MetricKind.values:
                raise serializers.ValidationError({"kind": [f"Must be one of {', '.join(MetricKind.values)}."]})
            rows = rows.filter(kind=kind)
        after = _int_param(request, "after_step")
        if after is not None:
            rows = rows.filter(step__gt=after)
        return Response(GrpoMetricSerializer(rows.order_by("step", "kind"), many=True).data)

    @extend_schema(responses=GrpoCheckpointSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def checkpoints(self, request, pk=None):
        """The run's complete checkpoints (pruned ones are gone unless registered), oldest first."""
        run = self.get_object()
        rows = run.checkpoints.select_related("generator").order_by("step")
        return Response(GrpoCheckpointSerializer(rows, many=True).data)

    @extend_schema(parameters=[STEP_PARAM], responses=GrpoSampleSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def samples(self, request, pk=None):
        """The evaluation images (the same prompts and seeds at every evaluation; step 0 is the base model)."""
        run = self.get_object()
        rows = GrpoSample.objects.filter(run=run)
        step = _int_param(request, "step")
        if step is not None:
            rows = rows.filter(step=step)
        return Response(GrpoSampleSerializer(rows.order_by("step", "prompt_index", "seed"), many=True).data)


@extend_schema(tags=["grpo-checkpoints"])
class GrpoCheckpointViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """LoRA checkpoints of every GRPO run; one registers as a new generator."""

    serializer_class = GrpoCheckpointSerializer
    permission_classes = [IsResearcher]

    def get_queryset(self):
        return checkpoints_visible_to(self.request.user)

    @extend_schema(request=None, responses={201: RegisteredGeneratorSerializer, 200: RegisteredGeneratorSerializer,
                                            400: FIELD_ERRORS})
    @action(detail=True, methods=["post"], url_path="register-generator")
    def register_generator(self, request, pk=None):
        """A new diffusers generator with the base generator's settings plus this checkpoint's LoRA (201), or the
        one registered before (200)."""
        with service_errors():
            generator, created = checkpoint_register_generator(checkpoint=self.get_object(), created_by=request.user)
        return Response({"generator": generator.pk, "name": generator.name, "created": created,
                         "settings": generator.settings},
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
