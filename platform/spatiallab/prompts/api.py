"""REST endpoints for prompt sets, prompts, perturbation rules and perturbed prompts, and a synchronous
perturbation of posted text. Perturbing a whole prompt set is a job (POST /api/v1/jobs/ with kind
"perturb_prompt_set"), not an endpoint here.

Views and serializers stay thin: the services store and validate; their ValidationErrors become 400s that
name the field (or the line of an uploaded file), and nothing is stored when one is raised.
"""

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields as dataclass_fields

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, Prefetch, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ml.spatial.generator import AXES, CATEGORIES, COLOUR_MODES, STYLES
from spatiallab.accounts.roles import DASHBOARD_ROLES, IsResearcher, has_any_role
from spatiallab.prompts.filters import PerturbedPromptFilter, PromptFilter, PromptSetFilter
from spatiallab.prompts.importers import FORMATS, MAX_PROMPT_CHARS, NUL, TEXT_FIELDS, IncomingPrompt
from spatiallab.prompts.models import PerturbationEdit, PerturbationRule, PerturbedPrompt, Prompt, PromptSet
from spatiallab.prompts.selectors import prompt_sets_visible_to, rules_all
from spatiallab.prompts.services import (
    AXES_HELP,
    COLOURS_HELP,
    EDIT_SUBSETS,
    MAX_GENERATED,
    STYLE_HELP,
    GeneratorSettings,
    PromptSetCreated,
    perturb_text,
    perturbation_edits,
    perturbation_rule_create,
    perturbation_rule_update,
    prompt_set_create,
    prompt_set_create_from_file,
    prompt_set_generate,
    rules_selected,
)

GENERATOR_DEFAULTS = {f.name: f.default for f in dataclass_fields(GeneratorSettings) if f.name != "count"}
MAX_SEED = 2**31 - 1
MAX_ID = 2**63 - 1  # a bigger id would overflow the database's 64-bit integer


@contextmanager
def service_errors() -> Iterator[None]:
    """Turns a service's Django ValidationError into DRF's 400, keeping the field names."""
    try:
        yield
    except DjangoValidationError as exc:
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        raise ValidationError(detail) from None


def visible_to(user, queryset: QuerySet) -> QuerySet:
    """Prompt sets, rules and perturbations are shared by the research team; nobody else sees any."""
    return queryset if has_any_role(user, DASHBOARD_ROLES) else queryset.none()


# --- Prompt sets ----------------------------------------------------------------------------------------


class PromptSetSerializer(serializers.ModelSerializer):
    prompt_count = serializers.IntegerField(read_only=True)
    perturbed_count = serializers.IntegerField(read_only=True, help_text="Perturbed prompts made from the set.")
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True,
                                       read_only=True)
    source_info = serializers.DictField(read_only=True, help_text="Upload facts or generator settings.")

    class Meta:
        model = PromptSet
        fields = ["id", "name", "description", "source", "source_info", "prompt_count", "perturbed_count",
                  "created_by", "created_at"]
        read_only_fields = fields


class PromptSetCreatedSerializer(PromptSetSerializer):
    created = serializers.IntegerField(read_only=True, help_text="Prompts stored.")
    duplicates = serializers.IntegerField(read_only=True, help_text="Prompts skipped: same normalised text.")

    class Meta(PromptSetSerializer.Meta):
        fields = [*PromptSetSerializer.Meta.fields, "created", "duplicates"]
        read_only_fields = fields

    @classmethod
    def of(cls, result: PromptSetCreated) -> dict:
        prompt_set = result.prompt_set
        prompt_set.prompt_count = prompt_set.created = result.created
        prompt_set.duplicates = result.duplicates
        prompt_set.perturbed_count = 0
        return cls(prompt_set).data


class PromptSetUploadSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    file = serializers.FileField(help_text="JSONL (key text or prompt), CSV (column text or prompt) or plain "
                                           "text with one prompt per line; UTF-8.")
    format = serializers.ChoiceField(choices=FORMATS, required=False,
                                     help_text="Defaults to the file name's extension.")


class PromptSetJSONSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    prompts = serializers.ListField(
        child=serializers.JSONField(), allow_empty=False, max_length=MAX_GENERATED,
        help_text='Prompt texts, or objects {"text": ..., "category": ...}.',
    )

    def validate_prompts(self, value: list) -> list[IncomingPrompt]:
        # Same checks as an uploaded file, reported by the prompt's 1-based position, all at once.
        prompts, errors = [], []
        for number, item in enumerate(value, start=1):
            category = ""
            if isinstance(item, dict):
                field = next((name for name in TEXT_FIELDS if name in item), None)
                if field is None:
                    errors.append(f'prompt {number}: missing field "text" (or "prompt")')
                    continue
                category = item.get("category", "")
                if not isinstance(category, str):
                    errors.append(f'prompt {number}: field "category" must be a string')
                    continue
                if NUL in category:
                    errors.append(f'prompt {number}: field "category" contains a NUL character')
                    continue
                item = item[field]
            if not isinstance(item, str):
                errors.append(f"prompt {number}: the prompt must be a string, not {type(item).__name__}")
                continue
            if NUL in item:  # PostgreSQL stores no NUL in text
                errors.append(f"prompt {number}: the prompt contains a NUL character")
                continue
            text = " ".join(item.split())
            if not text:
                errors.append(f"prompt {number}: the prompt is empty")
            elif len(text) > MAX_PROMPT_CHARS:
                errors.append(f"prompt {number}: the prompt has {len(text)} characters; the limit is "
                              f"{MAX_PROMPT_CHARS}")
            else:
                prompts.append(IncomingPrompt(number, text, category.strip()[:40]))
        if errors:
            raise serializers.ValidationError(errors)
        return prompts


class PromptSetGenerateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    count = serializers.IntegerField(min_value=1, max_value=MAX_GENERATED, help_text="Prompts to generate.")
    seed = serializers.IntegerField(min_value=0, max_value=2**63 - 1, default=GENERATOR_DEFAULTS["seed"])
    min_objects = serializers.IntegerField(default=GENERATOR_DEFAULTS["min_objects"])
    max_objects = serializers.IntegerField(default=GENERATOR_DEFAULTS["max_objects"])
    min_relations = serializers.IntegerField(default=GENERATOR_DEFAULTS["min_relations"])
    max_relations = serializers.IntegerField(default=GENERATOR_DEFAULTS["max_relations"])
    categories = serializers.ListField(child=serializers.ChoiceField(choices=list(CATEGORIES)), default=list,
                                       help_text="Scene categories to draw from; empty means all.")
    style = serializers.ChoiceField(choices=list(STYLES), default=GENERATOR_DEFAULTS["style"], help_text=STYLE_HELP)
    colours = serializers.ChoiceField(choices=list(COLOUR_MODES), default=GENERATOR_DEFAULTS["colours"],
                                      help_text=COLOURS_HELP)
    axes = serializers.ListField(child=serializers.ChoiceField(choices=list(AXES)), default=list(AXES),
                                 allow_empty=False, help_text=AXES_HELP)

    def settings(self) -> GeneratorSettings:
        data = self.validated_data
        return GeneratorSettings(
            count=data["count"], seed=data["seed"], min_objects=data["min_objects"],
            max_objects=data["max_objects"], min_relations=data["min_relations"],
            max_relations=data["max_relations"], categories=tuple(data["categories"]), style=data["style"],
            colours=data["colours"], axes=tuple(data["axes"]),
        )


class PromptSetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Prompt sets: list, inspect, create from an upload or a JSON list, or generate."""

    serializer_class = PromptSetSerializer
    permission_classes = [IsResearcher]
    filterset_class = PromptSetFilter
    parser_classes = [JSONParser, MultiPartParser]
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return prompt_sets_visible_to(self.request.user).order_by("-created_at", "-id")

    @extend_schema(
        request={"multipart/form-data": PromptSetUploadSerializer, "application/json": PromptSetJSONSerializer},
        responses={201: PromptSetCreatedSerializer},
        description="Multipart: upload a file (fields name, description, file, format). JSON: "
                    '{"name", "description", "prompts": [...]}. A bad line or prompt gets a 400 listing every '
                    "problem by number, and nothing is stored. Duplicates (same normalised text) are counted "
                    "and skipped.",
    )
    def create(self, request):
        if request.content_type.startswith("multipart/form-data"):
            payload = PromptSetUploadSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            data = payload.validated_data
            with service_errors():
                result = prompt_set_create_from_file(
                    name=data["name"], description=data["description"], data=data["file"].read(),
                    filename=data["file"].name, file_format=data.get("format"), created_by=request.user,
                )
        else:
            payload = PromptSetJSONSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            data = payload.validated_data
            with service_errors():
                result = prompt_set_create(
                    name=data["name"], description=data["description"], prompts=data["prompts"], source="api",
                    source_info={"prompts_posted": len(data["prompts"])}, created_by=request.user,
                )
        return Response(PromptSetCreatedSerializer.of(result), status=status.HTTP_201_CREATED)

    @extend_schema(request=PromptSetGenerateSerializer, responses={201: PromptSetCreatedSerializer})
    @action(detail=False, methods=["post"])
    def generate(self, request):
        """Generates a prompt set with the spatial prompt generator: deterministic for a seed."""
        payload = PromptSetGenerateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with service_errors():
            result = prompt_set_generate(name=payload.validated_data["name"], settings=payload.settings(),
                                         description=payload.validated_data["description"],
                                         created_by=request.user)
        return Response(PromptSetCreatedSerializer.of(result), status=status.HTTP_201_CREATED)


# --- Prompts --------------------------------------------------------------------------------------------


class PromptSerializer(serializers.ModelSerializer):
    relation_kinds = serializers.DictField(child=serializers.IntegerField(), read_only=True,
                                           help_text="Relation kind -> count.")

    class Meta:
        model = Prompt
        fields = ["id", "prompt_set", "position", "text", "category", "word_count", "object_count",
                  "relation_count", "unparsed_count", "relation_kinds", "source_line"]
        read_only_fields = fields


class PromptDetailSerializer(PromptSerializer):
    graph = serializers.DictField(read_only=True, help_text="The parsed scene graph: objects, relations (with "
                                                            "character spans) and unparsed spans.")

    class Meta(PromptSerializer.Meta):
        fields = [*PromptSerializer.Meta.fields, "graph"]
        read_only_fields = fields


class PromptViewSet(viewsets.ReadOnlyModelViewSet):
    """Prompts with their parsed graphs and stats; filter by set, relation counts and kinds, category, text."""

    serializer_class = PromptSerializer
    permission_classes = [IsResearcher]
    filterset_class = PromptFilter

    def get_queryset(self):
        queryset = Prompt.objects.order_by("prompt_set_id", "position")
        if self.action == "list":
            queryset = queryset.defer("graph")  # graphs are large; the detail carries one
        return visible_to(self.request.user, queryset)

    def get_serializer_class(self):
        return PromptDetailSerializer if self.action == "retrieve" else PromptSerializer


# --- Perturbation rules ---------------------------------------------------------------------------------


class PerturbationRuleSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True,
                                       read_only=True)
    params = serializers.JSONField(required=False, default=dict, help_text="Parameters of the rule kind.")

    class Meta:
        model = PerturbationRule
        fields = ["id", "name", "kind", "params", "weight", "enabled", "description", "created_by", "created_at"]
        read_only_fields = ["id", "created_by", "created_at"]


class PerturbationRuleViewSet(viewsets.ModelViewSet):
    """Perturbation rules researchers configure: a kind, its parameters, a weight, on or off."""

    serializer_class = PerturbationRuleSerializer
    permission_classes = [IsResearcher]
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return visible_to(self.request.user, rules_all())

    def perform_create(self, serializer):
        with service_errors():
            serializer.instance = perturbation_rule_create(**serializer.validated_data,
                                                           created_by=self.request.user)

    def update(self, request, *args, **kwargs):
        super().update(request, *args, **kwargs)
        # A partial serializer leaves out fields that fall back to their default (created_by of a built-in rule,
        # null); the answer is the whole rule, as GET gives it.
        return Response(self.get_serializer(self.get_object()).data)

    def perform_update(self, serializer):
        with service_errors():
            serializer.instance = perturbation_rule_update(rule=serializer.instance, **serializer.validated_data)


# --- Perturbed prompts ----------------------------------------------------------------------------------


class PerturbationEditSerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="rule.name", default=None, allow_null=True, read_only=True)
    relation_before = serializers.DictField(read_only=True)
    relation_after = serializers.DictField(read_only=True)
    span_before = serializers.ListField(child=serializers.IntegerField(), read_only=True,
                                        help_text="[start, end) in the original prompt.")
    span_after = serializers.ListField(child=serializers.IntegerField(), read_only=True,
                                       help_text="[start, end) in the perturbed prompt.")

    class Meta:
        model = PerturbationEdit
        fields = ["position", "rule", "rule_name", "rule_kind", "relation_kind", "relation_before",
                  "relation_after", "span_before", "span_after"]
        read_only_fields = fields


class PerturbedPromptSerializer(serializers.ModelSerializer):
    prompt_set = serializers.IntegerField(source="prompt_set_id", read_only=True)
    original = serializers.CharField(source="original_text", read_only=True, help_text="The perfect prompt.")
    edits = PerturbationEditSerializer(many=True, read_only=True)

    class Meta:
        model = PerturbedPrompt
        fields = ["id", "prompt", "prompt_set", "original", "text", "n_edits", "seed", "job", "created_at",
                  "edits"]
        read_only_fields = fields


class PerturbedPromptViewSet(viewsets.ReadOnlyModelViewSet):
    """Perturbed prompts with their edits; filter by set, prompt, rule, rule kind, edits and relation kind."""

    serializer_class = PerturbedPromptSerializer
    permission_classes = [IsResearcher]
    filterset_class = PerturbedPromptFilter

    def get_queryset(self):
        edits = PerturbationEdit.objects.select_related("rule").order_by("position")
        queryset = (
            PerturbedPrompt.objects.annotate(original_text=F("prompt__text"),
                                             prompt_set_id=F("prompt__prompt_set_id"))
            .prefetch_related(Prefetch("edits", queryset=edits))
            .order_by("prompt_id", "id")
        )
        return visible_to(self.request.user, queryset)


# --- Synchronous perturbation ---------------------------------------------------------------------------


class PerturbRequestSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=MAX_PROMPT_CHARS)
    rules = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False,
                                  default=list, help_text="Rule ids; empty or absent means every enabled rule.")
    edits = serializers.ChoiceField(choices=list(EDIT_SUBSETS), default="1",
                                    help_text='"1": one edit; "2-3": two or three, chosen by the seed.')
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, required=False, allow_null=True,
                                    help_text="Absent: a random seed, returned so the result can be repeated.")


class PerturbEditSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    rule = serializers.IntegerField(allow_null=True, help_text="Rule id.")
    rule_name = serializers.CharField()
    rule_kind = serializers.CharField()
    relation_kind = serializers.CharField(help_text="Kind of the relation before the edit.")
    relation_before = serializers.DictField()
    relation_after = serializers.DictField()
    span_before = serializers.ListField(child=serializers.IntegerField())
    span_after = serializers.ListField(child=serializers.IntegerField())
    text_before = serializers.CharField(help_text="The changed phrase in the original.")
    text_after = serializers.CharField(help_text="The changed phrase in the perturbed prompt.")


class PerturbResponseSerializer(serializers.Serializer):
    original = serializers.CharField()
    perturbed = serializers.CharField()
    n_edits = serializers.IntegerField()
    edits = PerturbEditSerializer(many=True)
    seed = serializers.IntegerField()


class PerturbView(APIView):
    """Perturbs posted text at once (nothing is stored): the preview behind rule design."""

    permission_classes = [IsResearcher]

    @extend_schema(request=PerturbRequestSerializer, responses={200: PerturbResponseSerializer})
    def post(self, request):
        payload = PerturbRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        text = " ".join(data["text"].split())
        seed = data.get("seed")
        if seed is None:
            seed = random.randrange(MAX_SEED + 1)
        with service_errors():
            rules = rules_selected(data["rules"])
            result = perturb_text(text=text, rules=rules, edits=data["edits"], seed=seed)
        body = {"original": text, "perturbed": result.perturbed, "n_edits": len(result.edits),
                "edits": perturbation_edits(result, original=text, rules=rules), "seed": seed}
        return Response(body)
