"""REST endpoints for scoring with a reward checkpoint (researchers and admins; annotators get 403).

POST score-requests/ (multipart: images with their prompts) and POST score-requests/best-of-n/ (JSON) queue a
score_images job on a GPU worker and answer 202 with the request; poll GET score-requests/{id}/ until its status
is succeeded, then read the results (best first, each with the URL of its image)."""

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from spatiallab.accounts.roles import IsResearcher
from spatiallab.generation.models import Generator
from spatiallab.generation.selectors import generators_visible_to
from spatiallab.prompts.api import service_errors
from spatiallab.rewards.models import RewardCheckpoint, ScoreRequest, ScoreRequestKind
from spatiallab.rewards.scoring import (
    CONTENT_TYPES,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_SIDE,
    MAX_IMAGES,
    MAX_N,
    MAX_PROMPT_CHARS,
    MIN_N,
    pair_prompts,
    sample_name,
    score_request_best_of_n,
    score_request_upload,
)
from spatiallab.rewards.selectors import score_requests_visible_to


class ScoreResultSerializer(serializers.Serializer):
    """One scored image (documents the shape of `results`)."""

    index = serializers.IntegerField(help_text="Position in the upload, or the sample number k (seed = seed + k).")
    rank = serializers.IntegerField(help_text="1 = highest mu.")
    prompt = serializers.CharField()
    image = serializers.CharField(help_text="Storage name of the image.")
    image_url = serializers.URLField(help_text="The image's bytes (GET).")
    seed = serializers.IntegerField(allow_null=True, help_text="Best-of-n: the sample's seed; uploads: null.")
    mu = serializers.FloatField(help_text="The score.")
    sigma = serializers.FloatField(help_text="The model's uncertainty, exp(log sigma).")


class ScoreImageSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    prompt = serializers.CharField()
    filename = serializers.CharField(help_text="The uploaded file's name.")
    image_url = serializers.URLField()


def _image_url(request, score_request_id: int, index: int) -> str:
    path = reverse("api-score-request-image", args=[score_request_id, index])
    return request.build_absolute_uri(path) if request else path


@extend_schema_field(ScoreResultSerializer(many=True))
class ResultsField(serializers.Field):
    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, score_request: ScoreRequest) -> list[dict]:
        request = self.context.get("request")
        return [{**{key: row.get(key) for key in ("index", "rank", "prompt", "image", "seed", "mu", "sigma")},
                 "image_url": _image_url(request, score_request.pk, row["index"])}
                for row in score_request.results]


@extend_schema_field(ScoreImageSerializer(many=True))
class ImagesField(serializers.Field):
    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, score_request: ScoreRequest) -> list[dict]:
        request = self.context.get("request")
        return [{"index": index, "prompt": item["prompt"], "filename": item.get("filename", ""),
                 "image_url": _image_url(request, score_request.pk, index)}
                for index, item in enumerate(score_request.images)]


class ScoreRequestSerializer(serializers.ModelSerializer):
    # A plain string: the job's status enum is already named after the job's component in the schema.
    status = serializers.CharField(read_only=True,
                                   help_text="queued, running, succeeded, failed or cancelled (mirrors the job).")
    checkpoint_step = serializers.IntegerField(source="checkpoint.step", default=None, read_only=True,
                                               allow_null=True)
    run = serializers.IntegerField(source="checkpoint.run_id", default=None, read_only=True, allow_null=True,
                                   help_text="The reward run of the checkpoint.")
    generator_name = serializers.CharField(source="generator.name", default=None, read_only=True, allow_null=True)
    progress_done = serializers.IntegerField(source="job.progress_done", default=None, read_only=True,
                                             allow_null=True)
    progress_total = serializers.IntegerField(source="job.progress_total", default=None, read_only=True,
                                              allow_null=True,
                                              help_text="Images: n generated plus n scored for best-of-n.")
    progress_message = serializers.CharField(source="job.progress_message", default=None, read_only=True,
                                             allow_null=True)
    error = serializers.CharField(source="job.error", default=None, read_only=True, allow_null=True,
                                  help_text="The job's error when it failed.")
    images = ImagesField(help_text="Uploads: the images in upload order, each with its prompt.")
    results = ResultsField(help_text="Once succeeded: every image scored, best first.")
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True, allow_null=True)

    class Meta:
        model = ScoreRequest
        fields = ["id", "kind", "checkpoint", "checkpoint_step", "run", "checkpoint_path", "prompt", "generator",
                  "generator_name", "n", "seed", "status", "job", "progress_done", "progress_total",
                  "progress_message", "error", "images", "results", "created_by", "created_at"]
        read_only_fields = fields


class ScoreUploadSerializer(serializers.Serializer):
    """The multipart body of an upload (documentation; the view reads the lists itself so that errors name each
    element as images[i] / prompts[i])."""

    checkpoint = serializers.PrimaryKeyRelatedField(queryset=RewardCheckpoint.objects.all(),
                                                    help_text="Id of the reward checkpoint that scores.")
    images = serializers.ListField(child=serializers.FileField(), min_length=1, max_length=MAX_IMAGES,
                                   help_text=f"1-{MAX_IMAGES} image files (PNG, JPEG, WebP, GIF, BMP), each at most "
                                             f"{MAX_IMAGE_BYTES // 2**20} MB and {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}.")
    prompts = serializers.ListField(child=serializers.CharField(max_length=MAX_PROMPT_CHARS), required=False,
                                    help_text="One prompt per image, in the order of the files.")
    prompt = serializers.CharField(required=False, max_length=MAX_PROMPT_CHARS,
                                   help_text="Or one prompt for every image.")


class CheckpointOnlySerializer(serializers.Serializer):
    checkpoint = serializers.PrimaryKeyRelatedField(queryset=RewardCheckpoint.objects.all(),
                                                    help_text="Id of the reward checkpoint that scores.")


class BestOfNSerializer(serializers.Serializer):
    checkpoint = serializers.PrimaryKeyRelatedField(queryset=RewardCheckpoint.objects.all(),
                                                    help_text="Id of the reward checkpoint that scores.")
    generator = serializers.PrimaryKeyRelatedField(queryset=Generator.objects.all(),
                                                   help_text="Id of an enabled generator.")
    prompt = serializers.CharField(help_text=f"The prompt to sample (at most {MAX_PROMPT_CHARS} characters).")
    n = serializers.IntegerField(help_text=f"Samples to draw, {MIN_N}-{MAX_N}.")
    seed = serializers.IntegerField(default=0, help_text="Seed of the first sample; then seed + 1, ...")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:
            self.fields["generator"].queryset = generators_visible_to(user)


def _image_response(name: str, score_request_id: int):
    if settings.STORAGE_BACKEND == "s3":  # object storage serves the bytes itself, through a signed URL
        return HttpResponseRedirect(default_storage.url(name))
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError:
        raise Http404("The image file is missing from storage.") from None
    content_type = CONTENT_TYPES.get(name.rsplit(".", 1)[-1].lower(), "application/octet-stream")
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = "private, max-age=86400"  # a request's files never change once stored
    return response


def score_image_name(score_request: ScoreRequest, index: int) -> str | None:
    """Storage name of a request's image `index`: an upload's file, or a best-of-n sample (once drawn)."""
    if score_request.kind == ScoreRequestKind.UPLOAD:
        return score_request.images[index]["name"] if 0 <= index < len(score_request.images) else None
    for row in score_request.results:
        if row["index"] == index:
            return row["image"]
    # Drawn but not scored yet (the job is still running).
    name = sample_name(score_request.pk, index)
    return name if 0 <= index < score_request.n and default_storage.exists(name) else None


@extend_schema(tags=["score-requests"])
@extend_schema_view(
    list=extend_schema(description="Score requests, newest first; filter by kind, checkpoint or status."),
    retrieve=extend_schema(description="One request: its status and progress (poll this), then its results, best "
                                       "first, each with the URL of its image."),
)
class ScoreRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Scoring images with a reward checkpoint: uploads and best-of-n re-ranking, queued on a GPU worker."""

    serializer_class = ScoreRequestSerializer
    permission_classes = [IsResearcher]
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    filterset_fields = ["kind", "checkpoint", "status"]
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return score_requests_visible_to(self.request.user)

    def _accepted(self, score_request: ScoreRequest) -> Response:
        score_request = self.get_queryset().get(pk=score_request.pk)
        return Response(ScoreRequestSerializer(score_request, context=self.get_serializer_context()).data,
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(request={"multipart/form-data": ScoreUploadSerializer},
                   responses={202: ScoreRequestSerializer})
    def create(self, request, *args, **kwargs):
        """Scores uploaded images: `images` (files) with `prompts` (one per image, in order) or one `prompt`.
        Answers 202; the request's job runs on a GPU worker."""
        checkpoint = CheckpointOnlySerializer(data={"checkpoint": request.data.get("checkpoint")})
        checkpoint.is_valid(raise_exception=True)
        files = request.FILES.getlist("images")
        data = request.data
        prompts = data.getlist("prompts") if hasattr(data, "getlist") else data.get("prompts")
        with service_errors():
            items = pair_prompts(files, prompts, data.get("prompt"))
            score_request = score_request_upload(checkpoint=checkpoint.validated_data["checkpoint"],
                                                 files_with_prompts=items, created_by=request.user)
        return self._accepted(score_request)

    @extend_schema(request=BestOfNSerializer, responses={202: ScoreRequestSerializer}, filters=False)
    @action(detail=False, methods=["post"], url_path="best-of-n", url_name="best-of-n",
            parser_classes=[JSONParser, FormParser, MultiPartParser], filter_backends=[], pagination_class=None)
    def best_of_n(self, request):
        """Best-of-n: the generator draws n samples of the prompt (seeds seed .. seed + n - 1) and the checkpoint
        ranks them, best first. Answers 202; the job runs on a GPU worker."""
        payload = BestOfNSerializer(data=request.data, user=request.user)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with service_errors():
            score_request = score_request_best_of_n(checkpoint=data["checkpoint"], generator=data["generator"],
                                                    prompt=data["prompt"], n=data["n"], seed=data["seed"],
                                                    created_by=request.user)
        return self._accepted(score_request)

    @extend_schema(responses={(200, content_type): OpenApiTypes.BINARY for content_type in CONTENT_TYPES.values()},
                   parameters=[OpenApiParameter("index", int, OpenApiParameter.PATH,
                                                description="The image's index (upload order, or sample k).")],
                   filters=False)
    @action(detail=True, methods=["get"], url_path=r"image/(?P<index>-?\d+)", url_name="image", filter_backends=[],
            pagination_class=None)
    def image(self, request, pk=None, index=""):
        """The bytes of one of the request's images (an upload, or a best-of-n sample once drawn)."""
        score_request = self.get_object()
        name = score_image_name(score_request, int(index))
        if name is None:
            raise Http404("No such image in this request.")
        return _image_response(name, score_request.pk)
