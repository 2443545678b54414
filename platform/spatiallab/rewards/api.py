"""REST endpoints for reward-model training runs (researchers and admins; annotators see none of it).

POST creates a run and its training job (a GPU job); a run's metric rows (the live curves) and its checkpoints
are sub-resources. Runs are never edited: a different configuration is a new run."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from spatiallab.accounts.roles import IsResearcher
from spatiallab.core.openapi import FIELD_ERRORS
from spatiallab.datasets.models import DatasetVersion
from spatiallab.jobs.models import MetricKind
from spatiallab.prompts.api import service_errors
from spatiallab.prompts.filters import MAX_DB_INT, MIN_DB_INT
from spatiallab.rewards.filters import RewardCheckpointFilter, RewardEvaluationFilter
from spatiallab.rewards.models import PairScore, RewardCheckpoint, RewardEvaluation, RewardMetric, RewardRun
from spatiallab.rewards.selectors import checkpoints_visible_to, evaluations_visible_to, runs_visible_to
from spatiallab.rewards.services import (
    EVALUATION_SPLITS,
    config_defaults,
    evaluation_create,
    run_cancel,
    run_create,
    run_resume,
    score_pairs_launch,
)
from spatiallab.verification.models import VerificationQueue


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

    @extend_schema(request=None, responses={200: RewardRunSerializer, 400: FIELD_ERRORS}, filters=False)
    @action(detail=True, methods=["post"], filter_backends=[])
    def cancel(self, request, pk=None):
        """Stops the training job (the checkpoints written so far stay; resume continues from the last one)."""
        with service_errors():
            run = run_cancel(run=self.get_object())
        return Response(RewardRunSerializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(request=None, responses={202: RewardRunSerializer, 400: FIELD_ERRORS}, filters=False)
    @action(detail=True, methods=["post"], filter_backends=[])
    def resume(self, request, pk=None):
        """A new training job for a cancelled or failed run, continuing from its last complete checkpoint."""
        with service_errors():
            run = run_resume(run=self.get_object(), created_by=request.user)
        return Response(RewardRunSerializer(self.get_queryset().get(pk=run.pk)).data, status=status.HTTP_202_ACCEPTED)

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


# --- Checkpoints: list, and scoring generated pairs -----------------------------------------------------------


class RewardCheckpointDetailSerializer(RewardCheckpointSerializer):
    run_name = serializers.CharField(source="run.name", read_only=True)

    class Meta(RewardCheckpointSerializer.Meta):
        fields = ["id", "run", "run_name", "step", "path", "metrics", "created_at"]
        read_only_fields = fields


class ScorePairsSerializer(serializers.Serializer):
    queue = serializers.PrimaryKeyRelatedField(queryset=VerificationQueue.objects.all(), required=False,
                                               help_text="Score this queue's undecided regular items.")
    order_by = serializers.ChoiceField(choices=["sigma", "margin"], required=False,
                                       help_text="With queue: then serve its open items most uncertain first "
                                                 "(sigma) or closest call first (margin).")
    selection = serializers.DictField(required=False, help_text="Else: gallery filters (job, generator, rule, "
                                                                "n_edits, prompt_set, ground_truth).")
    limit = serializers.IntegerField(min_value=1, max_value=100_000, default=2_000,
                                     help_text="At most this many pairs (newest first).")

    def validate(self, attrs):
        if ("queue" in attrs) == ("selection" in attrs):
            raise serializers.ValidationError({"queue": ["Give either queue or selection."]})
        if "order_by" in attrs and "queue" not in attrs:
            raise serializers.ValidationError({"order_by": ["Only a queue is ordered."]})
        return attrs  # the selection's filters are checked with the job's params (ScorePairsParams)


class JobStartedSerializer(serializers.Serializer):
    job = serializers.IntegerField(help_text="The job's id (GET /api/v1/jobs/{id}/ for its progress).")


class PairScoreSerializer(serializers.ModelSerializer):
    p_winner = serializers.FloatField(read_only=True, help_text="P(winner scores above loser) under the model.")

    class Meta:
        model = PairScore
        fields = ["pair", "winner_mu", "winner_sigma", "loser_mu", "loser_sigma", "margin", "spread", "p_winner"]
        read_only_fields = fields


@extend_schema(tags=["reward-checkpoints"])
class RewardCheckpointViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Complete checkpoints of every run (pruned ones are gone); scoring generated pairs with one."""

    serializer_class = RewardCheckpointDetailSerializer
    permission_classes = [IsResearcher]
    filterset_class = RewardCheckpointFilter

    def get_queryset(self):
        return checkpoints_visible_to(self.request.user).order_by("-run_id", "-step")

    @extend_schema(request=ScorePairsSerializer, responses={202: JobStartedSerializer})
    @action(detail=True, methods=["post"], url_path="score-pairs")
    def score_pairs(self, request, pk=None):
        """Queues a score_pairs job: the checkpoint's verdict on a queue's pairs (optionally ordering the queue by
        its uncertainty) or on the pairs matching gallery filters."""
        checkpoint = self.get_object()
        serializer = ScorePairsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with service_errors():
            job = score_pairs_launch(checkpoint=checkpoint, queue=data.get("queue"), order_by=data.get("order_by"),
                                     selection=data.get("selection"), limit=data["limit"], created_by=request.user)
        return Response({"job": job.pk}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=PairScoreSerializer(many=True), filters=False,
                   parameters=[OpenApiParameter("pair", int, many=True, description="Only these pairs.")])
    @action(detail=True, methods=["get"], url_path="pair-scores", filter_backends=[])
    def pair_scores(self, request, pk=None):
        """The checkpoint's stored verdicts on generated pairs, by pair id (paginated)."""
        checkpoint = self.get_object()
        rows = PairScore.objects.filter(checkpoint=checkpoint).order_by("pair_id")
        wanted = request.query_params.getlist("pair")
        if wanted:
            try:
                ids = [int(value) for value in wanted]
            except ValueError:
                raise serializers.ValidationError({"pair": ["Must be integers."]}) from None
            if any(not MIN_DB_INT <= value <= MAX_DB_INT for value in ids):
                raise serializers.ValidationError({"pair": ["Out of range."]})
            rows = rows.filter(pair_id__in=ids)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(PairScoreSerializer(page, many=True).data)


# --- Evaluations ----------------------------------------------------------------------------------------------


class RewardEvaluationSerializer(serializers.ModelSerializer):
    run_name = serializers.CharField(source="run.name", read_only=True)
    dataset_version_name = serializers.CharField(source="dataset_version.name", read_only=True)
    status = serializers.CharField(read_only=True, help_text="queued, running, succeeded, failed or cancelled.")
    report = serializers.DictField(read_only=True, help_text="pairs, overall, '1 edit', '2-3 edits', by_relation "
                                                             "(each {accuracy, correct, n, ci95}), mean_margin.")
    progress_done = serializers.IntegerField(source="job.progress_done", default=None, read_only=True,
                                             allow_null=True)
    progress_total = serializers.IntegerField(source="job.progress_total", default=None, read_only=True,
                                              allow_null=True)

    class Meta:
        model = RewardEvaluation
        fields = ["id", "run", "run_name", "checkpoint", "step", "checkpoint_path", "dataset_version",
                  "dataset_version_name", "dataset_hash", "split", "status", "job", "progress_done",
                  "progress_total", "report", "created_at"]
        read_only_fields = fields


class RewardEvaluationCreateSerializer(serializers.Serializer):
    checkpoint = serializers.PrimaryKeyRelatedField(queryset=RewardCheckpoint.objects.all())
    dataset_version = serializers.PrimaryKeyRelatedField(queryset=DatasetVersion.objects.all(),
                                                         help_text="A frozen dataset version.")
    # A string, not an enum: the schema's split enums are the datasets' (test / validation / train).
    split = serializers.CharField(max_length=20, default="test", allow_blank=True,
                                  help_text=f"The split evaluated: {', '.join(s for s in EVALUATION_SPLITS if s)}, "
                                            f"or empty for every entry.")


@extend_schema(tags=["reward-evaluations"])
class RewardEvaluationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                              viewsets.GenericViewSet):
    """Pairwise accuracy of a checkpoint on a split of a dataset version (an evaluate_reward job)."""

    serializer_class = RewardEvaluationSerializer
    permission_classes = [IsResearcher]
    filterset_class = RewardEvaluationFilter

    def get_queryset(self):
        return evaluations_visible_to(self.request.user)

    @extend_schema(request=RewardEvaluationCreateSerializer, responses={201: RewardEvaluationSerializer})
    def create(self, request, *args, **kwargs):
        serializer = RewardEvaluationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with service_errors():
            evaluation = evaluation_create(checkpoint=data["checkpoint"], dataset_version=data["dataset_version"],
                                           split=data["split"], created_by=request.user)
        evaluation = self.get_queryset().get(pk=evaluation.pk)
        return Response(RewardEvaluationSerializer(evaluation).data, status=status.HTTP_201_CREATED)
