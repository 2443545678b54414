"""REST endpoints for verification: queue management and statistics for researchers, and the annotation
client's actions (claim the next item, submit a verdict, skip, undo, fetch the item's images).

What an annotator receives never says which image came from the perfect prompt: an item is its prompt and two
image URLs that go through the annotator's own assignment (left/right in the lease's drawn order), and a
verdict is acknowledged by what was clicked, never by the canonical answer, the item's status, its pair or
anyone else's answers. Actions that are not possible now (an expired lease, an answered item, nothing to undo)
answer with the VerificationError's status and {"code", "detail"}; bad input gets a 400 naming the field.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from django.contrib.auth import get_user_model
from django.core.validators import ProhibitNullCharactersValidator
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from spatiallab.accounts.roles import ANNOTATION_ROLES, DASHBOARD_ROLES, HasRole, IsResearcher, has_any_role
from spatiallab.core.openapi import ErrorDetailSerializer
from spatiallab.generation.views import storage_image_response
from spatiallab.prompts.api import service_errors
from spatiallab.verification.filters import QueueFilter, QueueItemFilter
from spatiallab.verification.models import (
    Assignment,
    AssignmentStatus,
    Choice,
    ItemStatus,
    QueueItem,
    VerificationQueue,
)
from spatiallab.verification.selectors import (
    assignment_image_name,
    item_view,
    queue_progress,
    queue_stats,
    queues_for_annotator,
    queues_open_to,
    queues_visible_to,
    queues_with_progress,
    stats_as_dict,
)
from spatiallab.verification.services import (
    SELECTION_KEYS,
    Lease,
    VerificationError,
    item_adjudicate,
    item_claim,
    item_restore,
    item_skip,
    queue_create,
    queue_update,
    verdict_submit,
    verdict_undo,
)

MAX_INT = 2**31 - 1
MAX_ID = 2**63 - 1
# Ids in URLs: at most 18 digits, so a longer number is a 404 and never an overflow in a raw SQL parameter.
ID_REGEX = r"\d{1,18}"
SKIP_REASON_CHARS = Assignment._meta.get_field("skip_reason").max_length
IMAGE_SIDES = ["left", "right", "left-thumb", "right-thumb"]


class Refused(APIException):
    """A VerificationError as a response: its HTTP status, with a stable code for API clients."""

    def __init__(self, exc: VerificationError):
        super().__init__(detail=str(exc), code=exc.code)
        self.status_code = exc.status
        self.detail = {"code": exc.code, "detail": str(exc)}


@contextmanager
def service_calls() -> Iterator[None]:
    """Service errors as responses: ValidationError -> 400 naming the field, VerificationError -> its status."""
    try:
        with service_errors():
            yield
    except VerificationError as exc:
        raise Refused(exc) from None


class RefusalSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable for clients: lease_expired, already_answered, key_reused, "
                                           "nothing_to_undo, ...")
    detail = serializers.CharField()


REFUSALS = {
    # Bad input names the fields ({field: [errors]}); a refusal says {code, detail}: both are objects.
    400: OpenApiResponse(OpenApiTypes.OBJECT, description="Bad input (a field name with its errors) or a client "
                                                          "key used for another item ({code: key_reused, detail})."),
    # A missing queue or assignment is a plain {detail}; a refusal adds its code.
    404: OpenApiResponse(ErrorDetailSerializer, description="Not found, or not open to you."),
    **{code: OpenApiResponse(RefusalSerializer, description=text) for code, text in (
        (409, "Not possible now (e.g. already_answered, already_skipped, nothing_to_undo)."),
        (410, "The lease expired and the item went back to the queue (code lease_expired)."),
    )},
}


def _researcher(user) -> bool:
    return has_any_role(user, DASHBOARD_ROLES)


def _require_object(data) -> None:
    if not isinstance(data, Mapping):
        raise ValidationError({"non_field_errors": ["Expected a JSON object."]})


def _active_users():
    return get_user_model().objects.filter(is_active=True)


class UsernameField(serializers.SlugRelatedField):
    """An active user, by username."""

    def __init__(self, **kwargs):
        super().__init__(slug_field="username", queryset=_active_users(), **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:  # PostgreSQL refuses NUL in a text comparison
            raise ValidationError(ProhibitNullCharactersValidator.message)
        return super().to_internal_value(data)


# --- Queues (researchers manage, annotators list theirs) -------------------------------------------------


class QueueSerializer(serializers.ModelSerializer):
    """A queue as researchers see it, with its progress counts (regular items by status; gold counted apart)."""

    annotators = UsernameField(many=True, required=False,
                               help_text="Usernames who may work on the queue; empty: every annotator.")
    selection = serializers.DictField(read_only=True, help_text="The pair selection the queue was built from.")
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True,
                                       read_only=True)
    item_count = serializers.IntegerField(read_only=True, help_text="Regular items (gold items not counted).")
    gold_count = serializers.IntegerField(read_only=True)
    verified_count = serializers.IntegerField(read_only=True)
    rejected_count = serializers.IntegerField(read_only=True)
    disputed_count = serializers.IntegerField(read_only=True)
    flagged_count = serializers.IntegerField(read_only=True, help_text="Regular items flagged as broken.")
    build_job = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True,
        help_text="The job adding the items of a large queue (status `building` until it is done).")

    class Meta:
        model = VerificationQueue
        fields = ["id", "name", "instructions", "overlap", "quorum", "lease_minutes", "gold_share", "priority",
                  "status", "annotators", "selection", "created_by", "created_at", "item_count", "gold_count",
                  "verified_count", "rejected_count", "disputed_count", "flagged_count", "build_job"]
        read_only_fields = ["id", "selection", "created_by", "created_at", "build_job"]
        extra_kwargs = {"priority": {"min_value": -MAX_INT, "max_value": MAX_INT}}


class QueueBriefSerializer(serializers.Serializer):
    """A queue as an annotator sees it: their own answers and the items still open, nobody else's work."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    instructions = serializers.CharField()
    my_answered = serializers.IntegerField(help_text="Your answers in this queue.")
    open_items = serializers.IntegerField(help_text="Items still waiting for answers.")


class SelectionSerializer(serializers.Serializer):
    job = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, allow_null=True,
                                   help_text="Generation job id.")
    generator = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, allow_null=True)
    rule = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, allow_null=True,
                                    help_text="Perturbation rule id (any edit of the pair).")
    n_edits = serializers.RegexField(r"^(2-3|[1-9]\d?)$", required=False, allow_null=True,
                                     help_text='"1", "2-3" (the paper\'s subsets) or an exact number.')
    prompt_set = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, allow_null=True)

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(SELECTION_KEYS))
            if unknown:
                raise ValidationError(f"Unknown selection keys: {', '.join(map(str, unknown))}; known: "
                                      f"{', '.join(SELECTION_KEYS)}.")
        return super().to_internal_value(data)


class GoldPairSerializer(serializers.Serializer):
    pair = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    verified = serializers.BooleanField(help_text="The known answer: the pair is a valid preference pair.")


class QueueCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    instructions = serializers.CharField(required=False, allow_blank=True, default="")
    overlap = serializers.IntegerField(default=3, help_text="Annotators who answer each pair (1-20).")
    quorum = serializers.IntegerField(required=False, allow_null=True, default=None,
                                      help_text="Matching answers that decide a pair; default a majority.")
    lease_minutes = serializers.IntegerField(default=10)
    gold_share = serializers.FloatField(default=0.0, help_text="Share of served items that are gold (0-0.5).")
    priority = serializers.IntegerField(default=0, min_value=-MAX_INT, max_value=MAX_INT)
    annotators = UsernameField(many=True, required=False, default=list,
                               help_text="Usernames who may work on the queue; empty: every annotator.")
    selection = SelectionSerializer(required=False, default=dict,
                                    help_text="Which pairs (like the gallery's filters); empty: every pair.")
    gold_count = serializers.IntegerField(min_value=0, max_value=MAX_INT, default=0,
                                          help_text="Gold pairs to draw from the selected pairs whose renderer "
                                                    "ground truth is known.")
    gold = GoldPairSerializer(many=True, required=False, default=list,
                              help_text="Gold pairs with their known answer (instead of gold_count).")
    limit = serializers.IntegerField(min_value=1, max_value=MAX_INT, required=False, allow_null=True,
                                     help_text="At most this many regular items (the lowest pair ids).")


class QueueProgressSerializer(serializers.Serializer):
    items = serializers.IntegerField(help_text="Regular items.")
    gold = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField(), help_text="Regular items by status.")
    decided = serializers.IntegerField(help_text="Verified, rejected or disputed.")
    answered = serializers.IntegerField()
    skipped = serializers.IntegerField()
    leased = serializers.IntegerField()
    answers_needed = serializers.IntegerField(help_text="Regular items times the overlap.")
    percent = serializers.FloatField()


class AnnotatorStatsSerializer(serializers.Serializer):
    """null: no data for this number."""

    user_id = serializers.IntegerField()
    username = serializers.CharField()
    answered = serializers.IntegerField()
    skipped = serializers.IntegerField()
    skip_rate = serializers.FloatField(allow_null=True)
    median_seconds = serializers.FloatField(allow_null=True)
    gold_answered = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    consensus_items = serializers.IntegerField()
    consensus_agreement = serializers.FloatField(allow_null=True, help_text="Agreement with decided items.")
    single_picks = serializers.IntegerField(help_text="Answers that pick exactly one image.")
    position_bias = serializers.FloatField(allow_null=True, help_text="Share of left among single picks.")


class KappaMatrixSerializer(serializers.Serializer):
    annotators = serializers.ListField(child=serializers.CharField(), help_text="Usernames, in matrix order.")
    matrix = serializers.ListField(child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
                                   help_text="Cohen's kappa of each pair of annotators (null: no shared items).")
    shared = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()),
                                   help_text="Items both annotators answered.")


class ThroughputSerializer(serializers.Serializer):
    hour = serializers.DateTimeField()
    answers = serializers.IntegerField()


class QueueStatsSerializer(serializers.Serializer):
    verdicts = serializers.IntegerField(help_text="Answers on regular items.")
    items_rated = serializers.IntegerField()
    percent_agreement = serializers.FloatField(allow_null=True)
    fleiss_kappa = serializers.FloatField(allow_null=True)
    krippendorff_alpha = serializers.FloatField(allow_null=True)
    answers = serializers.DictField(child=serializers.IntegerField(), help_text="Answer -> count.")
    annotators = AnnotatorStatsSerializer(many=True)
    kappa = KappaMatrixSerializer()
    throughput = ThroughputSerializer(many=True)
    progress = QueueProgressSerializer()


class AnnotationItemSerializer(serializers.Serializer):
    """An item as the annotation client shows it. Nothing here says which image came from which prompt."""

    assignment = serializers.IntegerField(help_text="Your assignment: post the verdict or skip to it.")
    expires_at = serializers.DateTimeField(help_text="Answer before this, or the item goes back to the queue.")
    resumed = serializers.BooleanField(help_text="Your existing lease (a reload), not a new one.")
    prompt = serializers.CharField(help_text="The prompt both images should follow.")
    prompt_html = serializers.CharField(help_text="The prompt with relation phrases marked (class rel, edited).")
    edited = serializers.ListField(child=serializers.CharField(), help_text="The phrases to check most closely.")
    left_image = serializers.URLField()
    right_image = serializers.URLField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    instructions = serializers.CharField()


class QueueViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                   mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Verification queues. Researchers see every queue with its progress, create and edit them; annotators
    list the queues open to them (id, name, instructions, my_answered, open_items) and work on them through
    next/verdict/skip/undo."""

    filterset_class = QueueFilter
    required_roles = ANNOTATION_ROLES
    http_method_names = ["get", "post", "patch", "head", "options"]
    lookup_value_regex = ID_REGEX
    researcher_actions = {"create", "partial_update", "update", "progress", "stats"}

    def get_permissions(self):
        return [IsResearcher()] if self.action in self.researcher_actions else [HasRole()]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return VerificationQueue.objects.none()
        user = self.request.user
        if _researcher(user):
            return queues_with_progress(user).prefetch_related("annotators").order_by("-priority", "-created_at",
                                                                                      "-id")
        return queues_open_to(user)

    def get_serializer_class(self):
        if getattr(self, "swagger_fake_view", False) or _researcher(self.request.user):
            return QueueSerializer
        return QueueBriefSerializer

    def _visible_queue(self, pk) -> VerificationQueue:
        return get_object_or_404(queues_visible_to(self.request.user), pk=pk)

    def _open_queue(self, pk) -> VerificationQueue:
        # Annotating goes through queues_open_to for every role: a queue restricted to others is a 404.
        return get_object_or_404(queues_open_to(self.request.user), pk=pk)

    @extend_schema(description="Researchers: every queue with progress counts. Annotators: the queues open to "
                               "them, each as {id, name, instructions, my_answered, open_items}.")
    def list(self, request, *args, **kwargs):
        if _researcher(request.user):
            return super().list(request, *args, **kwargs)
        queues = queues_for_annotator(request.user)
        if set(request.query_params) & set(QueueFilter.base_filters):
            allowed = set(self.filter_queryset(queues_open_to(request.user)).values_list("pk", flat=True))
            queues = [queue for queue in queues if queue.pk in allowed]
        page = self.paginate_queryset(queues)
        return self.get_paginated_response(QueueBriefSerializer(page, many=True).data)

    @extend_schema(description="Researchers: the queue with progress counts. Annotators: "
                               "{id, name, instructions, my_answered, open_items} of a queue open to them.")
    def retrieve(self, request, *args, **kwargs):
        if _researcher(request.user):
            return super().retrieve(request, *args, **kwargs)
        queue = next((q for q in queues_for_annotator(request.user) if str(q.pk) == kwargs["pk"]), None)
        if queue is None:
            raise Http404
        return Response(QueueBriefSerializer(queue).data)

    @extend_schema(request=QueueCreateSerializer, responses={201: QueueSerializer, 400: OpenApiTypes.OBJECT},
                   description="Builds a queue over the selected pairs in one transaction. A bad field gets a 400 "
                               "naming it, and nothing is stored.")
    def create(self, request, *args, **kwargs):
        _require_object(request.data)
        payload = QueueCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with service_calls():
            build = queue_create(
                name=data["name"], instructions=data["instructions"], overlap=data["overlap"],
                quorum=data["quorum"], lease_minutes=data["lease_minutes"], gold_share=data["gold_share"],
                priority=data["priority"], annotators=data["annotators"], selection=dict(data["selection"]),
                gold_count=data["gold_count"], gold=[(g["pair"], g["verified"]) for g in data["gold"]],
                limit=data.get("limit"), created_by=request.user)
        queue = self.get_queryset().get(pk=build.queue.pk)
        return Response(QueueSerializer(queue).data, status=status.HTTP_201_CREATED)

    @extend_schema(description="Edits a queue. Overlap and quorum are fixed once the queue has an answer; "
                               "the selection is fixed (build a new queue for other pairs).")
    def partial_update(self, request, *args, **kwargs):
        _require_object(request.data)
        queue = self.get_object()
        writable = {name for name, field in QueueSerializer().fields.items() if not field.read_only}
        unknown = sorted(set(request.data) - writable)
        if unknown:
            raise ValidationError({name: ["This field cannot be changed."] for name in unknown})
        payload = QueueSerializer(queue, data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        changes = dict(payload.validated_data)
        annotators = changes.pop("annotators", None)
        with service_calls():
            queue_update(queue=queue, annotators=annotators, **changes)
        return Response(QueueSerializer(self.get_object()).data)

    @extend_schema(responses=QueueProgressSerializer)
    @action(detail=True, methods=["get"])
    def progress(self, request, pk=None):
        """Items by status and answers given and needed."""
        return Response(queue_progress(self._visible_queue(pk)))

    @extend_schema(responses=QueueStatsSerializer)
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        """Agreement statistics (percent agreement, Fleiss' kappa, Krippendorff's alpha, Cohen's kappa matrix,
        per-annotator quality) and progress."""
        queue = self._visible_queue(pk)
        return Response({**stats_as_dict(queue_stats(queue)), "progress": queue_progress(queue)})

    # --- The annotation client -------------------------------------------------------------------------

    @extend_schema(request=None, responses={200: AnnotationItemSerializer, 204: OpenApiResponse(
        description="Nothing is left for you in this queue."), 404: REFUSALS[404]})
    @action(detail=True, methods=["post"])
    def next(self, request, pk=None):
        """Your current item in the queue: your live lease if you hold one (resumed), else a new one."""
        queue = self._open_queue(pk)
        with service_calls():
            lease = item_claim(queue=queue, user=request.user)
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(annotation_item(request, queue, lease))

    @extend_schema(request=None, responses={200: AnnotationItemSerializer, 404: REFUSALS[404],
                                            409: REFUSALS[409]})
    @action(detail=True, methods=["post"])
    def undo(self, request, pk=None):
        """Takes back your last answer in the queue (within the undo window): the item is leased to you again
        and returned; the item you were given after it goes back to the queue."""
        queue = self._open_queue(pk)
        with service_calls():
            assignment_id = verdict_undo(user=request.user, queue=queue)
        row = (Assignment.objects.filter(pk=assignment_id, annotator=request.user)
               .values_list("pk", "item_id", "item__pair_id", "winner_left", "expires_at").get())
        return Response(annotation_item(request, queue, Lease(*row, resumed=True)))


def annotation_item(request, queue: VerificationQueue, lease: Lease) -> dict:
    view = item_view(lease)

    def image(side: str) -> str:
        return request.build_absolute_uri(reverse("api-assignment-image", args=[lease.assignment_id, side]))

    return AnnotationItemSerializer({
        "assignment": lease.assignment_id, "expires_at": lease.expires_at, "resumed": lease.resumed,
        "prompt": view.prompt_text, "prompt_html": str(view.prompt_html), "edited": view.edited,
        "left_image": image("left"), "right_image": image("right"), "width": view.width, "height": view.height,
        "instructions": queue.instructions,
    }).data


# --- Assignments (the annotator's own) ---------------------------------------------------------------------


class VerdictSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(choices=Choice.choices, help_text="What you clicked, by position.")
    seconds = serializers.FloatField(required=False, allow_null=True, default=None,
                                     help_text="Time spent on the item.")
    client_key = serializers.CharField(required=False, allow_null=True, default=None, max_length=64,
                                       help_text="Idempotency key: a retry with the same key is stored once.")


class VerdictStoredSerializer(serializers.Serializer):
    assignment = serializers.IntegerField()
    choice = serializers.ChoiceField(choices=Choice.choices)
    replayed = serializers.BooleanField(help_text="A retry of a verdict stored before; nothing new was stored.")


class SkipSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=SKIP_REASON_CHARS)
    broken = serializers.BooleanField(default=False, help_text="The images are broken: the item leaves the queue "
                                                               "until a researcher restores it.")


class SkippedSerializer(serializers.Serializer):
    assignment = serializers.IntegerField()
    broken = serializers.BooleanField()


class AssignmentViewSet(viewsets.GenericViewSet):
    """The caller's own assignments: verdict, skip and the item's images. Another user's assignment is never
    reached (the services and the image lookup filter by the caller)."""

    required_roles = ANNOTATION_ROLES
    permission_classes = [HasRole]
    lookup_value_regex = ID_REGEX

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Assignment.objects.none()
        return Assignment.objects.filter(annotator=self.request.user)

    @extend_schema(request=VerdictSerializer, responses={
        201: VerdictStoredSerializer, 200: OpenApiResponse(VerdictStoredSerializer, description="A retry."),
        400: REFUSALS[400], 409: REFUSALS[409], 410: REFUSALS[410]})
    @action(detail=True, methods=["post"])
    def verdict(self, request, pk=None):
        """Stores your verdict on your leased item: 201, or 200 with replayed=true for a retry (same client
        key)."""
        _require_object(request.data)
        payload = VerdictSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with service_calls():
            result = verdict_submit(user=request.user, assignment_id=int(pk), choice=data["choice"],
                                    seconds=data["seconds"], client_key=data["client_key"])
        choice = data["choice"]
        if result.replayed:  # answer with what was stored
            choice = (Assignment.objects.filter(pk=result.assignment_id, annotator=request.user)
                      .values_list("choice", flat=True).get())
        body = VerdictStoredSerializer({"assignment": result.assignment_id, "choice": choice,
                                        "replayed": result.replayed}).data
        return Response(body, status=status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED)

    @extend_schema(request=SkipSerializer, responses={200: SkippedSerializer, 409: REFUSALS[409],
                                                      410: REFUSALS[410]})
    @action(detail=True, methods=["post"])
    def skip(self, request, pk=None):
        """Gives your leased item back (you will not see it again); broken=true flags its images."""
        _require_object(request.data)
        payload = SkipSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with service_calls():
            item_skip(user=request.user, assignment_id=int(pk), reason=data["reason"], broken=data["broken"])
        return Response(SkippedSerializer({"assignment": int(pk), "broken": data["broken"]}).data)

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY, (200, "image/webp"): OpenApiTypes.BINARY,
                              404: OpenApiResponse(description="Not your assignment.")},
                   parameters=[OpenApiParameter("side", str, OpenApiParameter.PATH, enum=IMAGE_SIDES)])
    @action(detail=True, methods=["get"], url_path=r"image/(?P<side>[a-z-]+)", url_name="image")
    def image(self, request, pk=None, side=""):
        """The image shown on one side of your assignment (thumbnails are WebP)."""
        name = assignment_image_name(user=request.user, assignment_id=int(pk), side=side)
        if not name:
            raise Http404("No such image.")
        return storage_image_response(name)


# --- Items (researchers) -----------------------------------------------------------------------------------


class ItemVerdictSerializer(serializers.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username", read_only=True)

    class Meta:
        model = Assignment
        fields = ["annotator", "answer", "choice", "seconds", "answered_at"]
        read_only_fields = fields


class AdjudicationSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="verified or rejected.")
    note = serializers.CharField()
    decided_by = serializers.CharField(source="decided_by.username", default=None, allow_null=True)
    decided_at = serializers.DateTimeField()


class QueueItemSerializer(serializers.ModelSerializer):
    verdicts = ItemVerdictSerializer(many=True, read_only=True,
                                     help_text="The item's answers (answer: in terms of the pair; choice: the "
                                               "position clicked, as shown to that annotator).")
    adjudication = AdjudicationSerializer(read_only=True, allow_null=True,
                                          help_text="A researcher's decision, when there is one.")

    class Meta:
        model = QueueItem
        fields = ["id", "queue", "pair", "is_gold", "gold_verified", "status", "done", "taken", "flags", "decided_at",
                  "adjudication", "verdicts"]
        read_only_fields = fields


def items_with_verdicts(queryset):
    """Items with their answers and adjudication, in a fixed number of queries whatever the page size."""
    verdicts = (Assignment.objects.filter(status=AssignmentStatus.ANSWERED).select_related("annotator")
                .order_by("answered_at", "pk"))
    return (queryset.select_related("adjudication__decided_by")
            .prefetch_related(Prefetch("assignments", queryset=verdicts, to_attr="verdicts")))


class QueueItemListView(generics.ListAPIView):
    """A queue's items with their verdicts; filter by status and gold."""

    serializer_class = QueueItemSerializer
    permission_classes = [IsResearcher]
    filterset_class = QueueItemFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return QueueItem.objects.none()
        queue = get_object_or_404(queues_visible_to(self.request.user), pk=self.kwargs["queue_pk"])
        return items_with_verdicts(queue.items.all()).order_by("pk")


class AdjudicateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[(ItemStatus.VERIFIED.value, "Verified"),
                                              (ItemStatus.REJECTED.value, "Rejected")])
    note = serializers.CharField(required=False, allow_blank=True, default="")


class ItemViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One item of a queue the researcher sees: inspect it, adjudicate it, restore it after a broken flag."""

    serializer_class = QueueItemSerializer
    permission_classes = [IsResearcher]
    lookup_value_regex = ID_REGEX

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return QueueItem.objects.none()
        return items_with_verdicts(QueueItem.objects.filter(queue__in=queues_visible_to(self.request.user)))

    @extend_schema(request=AdjudicateSerializer, responses={200: QueueItemSerializer, 400: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def adjudicate(self, request, pk=None):
        """Decides a disputed item (or overrules a decided one): verified or rejected, with a note."""
        _require_object(request.data)
        item = self.get_object()
        payload = AdjudicateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with service_calls():
            item_adjudicate(item=item, status=payload.validated_data["status"], decided_by=request.user,
                            note=payload.validated_data["note"])
        return Response(QueueItemSerializer(self.get_object()).data)

    @extend_schema(request=None, responses={200: QueueItemSerializer, 400: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        """Puts an item flagged as broken back into its queue."""
        item = self.get_object()
        with service_calls():
            item_restore(item=item)
        return Response(QueueItemSerializer(self.get_object()).data)
