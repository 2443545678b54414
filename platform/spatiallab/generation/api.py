"""REST endpoints for generators, generated pairs and generation failures. Launching a generation is a job
(POST /api/v1/jobs/ with kind "generate_pairs"), not an endpoint here."""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from spatiallab.accounts.roles import IsResearcher
from spatiallab.generation.filters import GenerationFailureFilter, GeneratorFilter, PairFilter
from spatiallab.generation.models import GenerationFailure, Generator, Pair
from spatiallab.generation.selectors import failures_visible_to, generators_with_pair_counts, pairs_visible_to
from spatiallab.generation.services import generator_create, generator_update
from spatiallab.generation.views import pair_image_response
from spatiallab.prompts.api import service_errors


class GeneratorSerializer(serializers.ModelSerializer):
    settings = serializers.DictField(required=False, default=dict,
                                     help_text="Backend settings; missing ones take their defaults "
                                               "(GET /api/v1/generators/ shows them filled in).")
    pair_count = serializers.IntegerField(read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True,
                                       read_only=True)

    class Meta:
        model = Generator
        fields = ["id", "name", "backend", "settings", "description", "enabled", "pair_count", "created_by",
                  "created_at"]
        read_only_fields = ["id", "pair_count", "created_by", "created_at"]


class GeneratorUpdateSerializer(serializers.Serializer):
    settings = serializers.DictField(required=False, help_text="Only until the generator has made a pair.")
    description = serializers.CharField(required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class GeneratorViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                       mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Registered generators. Settings are frozen once a generator has made pairs; register a new one."""

    serializer_class = GeneratorSerializer
    permission_classes = [IsResearcher]
    filterset_class = GeneratorFilter
    http_method_names = ["get", "post", "patch", "head", "options"]
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return generators_with_pair_counts(self.request.user).order_by("name")

    def create(self, request, *args, **kwargs):
        payload = GeneratorSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with service_errors():
            generator = generator_create(name=data["name"], backend=data["backend"], settings=data["settings"],
                                         description=data.get("description", ""),
                                         enabled=data.get("enabled", True), created_by=request.user)
        generator.pair_count = 0
        return Response(GeneratorSerializer(generator).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        generator = self.get_object()
        unknown = sorted(set(request.data) - {"settings", "description", "enabled"})
        if unknown:
            raise ValidationError({name: "cannot be changed; register a new generator." for name in unknown})
        payload = GeneratorUpdateSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        with service_errors():
            generator_update(generator=generator, **payload.validated_data)
        return Response(GeneratorSerializer(self.get_object()).data)


@extend_schema_field({"type": "object", "properties": {name: {"type": "string", "format": "uri"}
                                                       for name in ("winner", "loser", "winner_thumb", "loser_thumb")}})
class PairImagesField(serializers.Field):
    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, pair: Pair) -> dict:
        request = self.context.get("request")

        def url(which: str) -> str:
            path = reverse("api-pair-image", args=[pair.pk, which])
            return request.build_absolute_uri(path) if request else path

        return {"winner": url("winner"), "loser": url("loser"), "winner_thumb": url("winner-thumb"),
                "loser_thumb": url("loser-thumb")}


class PairSerializer(serializers.ModelSerializer):
    generator_name = serializers.CharField(source="generator.name", read_only=True)
    prompt_text = serializers.CharField(source="prompt.text", read_only=True, help_text="The perfect prompt.")
    perturbed_text = serializers.CharField(source="perturbed.text", read_only=True)
    images = PairImagesField(help_text="winner: the perfect prompt's image (candidate winner).")
    meta = serializers.DictField(read_only=True, help_text="Settings, seed, texts, edits, timings, ground truth.")

    class Meta:
        model = Pair
        fields = ["id", "generator", "generator_name", "job", "prompt", "perturbed", "seed", "n_edits",
                  "prompt_text", "perturbed_text", "images", "width", "height", "ground_truth_ok", "meta",
                  "created_at"]
        read_only_fields = fields


class PairViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Generated pairs, filterable like the gallery (job, generator, prompt set, rule, number of edits)."""

    serializer_class = PairSerializer
    permission_classes = [IsResearcher]
    filterset_class = PairFilter
    lookup_value_regex = r"\d+"

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY, (200, "image/webp"): OpenApiTypes.BINARY},
                   parameters=[OpenApiParameter("which", str, OpenApiParameter.PATH,
                                                enum=["winner", "loser", "winner-thumb", "loser-thumb"])])
    @action(detail=True, methods=["get"], url_path=r"image/(?P<which>[a-z-]+)", url_name="image")
    def image(self, request, pk=None, which=""):
        """The pair's image file: winner (perfect prompt), loser, or their thumbnails (WebP)."""
        return pair_image_response(pairs_visible_to(request.user), pk, which)

    def get_queryset(self):
        return pairs_visible_to(self.request.user).select_related("generator", "prompt", "perturbed").defer(
            "prompt__graph", "prompt__normalized_text", "perturbed__normalized_text").order_by("-id")


class GenerationFailureSerializer(serializers.ModelSerializer):
    class Meta:
        model = GenerationFailure
        fields = ["id", "job", "generator", "perturbed", "seed", "prompt_text", "perturbed_text", "error",
                  "created_at"]
        read_only_fields = fields


class GenerationFailureViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """(Perturbed prompt, seed) pairs that a generation job could not render, with the error."""

    serializer_class = GenerationFailureSerializer
    permission_classes = [IsResearcher]
    filterset_class = GenerationFailureFilter
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return failures_visible_to(self.request.user).order_by("-id")
