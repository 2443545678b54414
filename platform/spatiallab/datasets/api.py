"""REST endpoints for dataset versions and their exports (researchers and admins; annotators see none of it).

A frozen version never changes, so its detail, entries, card, README and downloads carry an ETag derived from
its content hash and answer 304 to a matching If-None-Match. There is no way to change or delete a version here:
a change is a new version (POST with `parent`). Downloads of small exports stream; larger ones are made by
POST /dataset-exports/ (a job) and downloaded from the export with their SHA-256.
"""

from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.response import Response

from spatiallab.accounts.roles import IsResearcher
from spatiallab.datasets.exports import (
    CONTENT_TYPES,
    EXTENSIONS,
    NotFrozen,
    export_chunks,
    export_filename,
    selected_count,
    streamable,
)
from spatiallab.datasets.filters import DatasetEntryFilter, DatasetExportFilter, DatasetVersionFilter
from spatiallab.datasets.models import DatasetEntry, DatasetExport, DatasetVersion, ExportFormat, Split, VersionStatus
from spatiallab.datasets.selectors import exports_visible_to, versions_visible_to
from spatiallab.datasets.services import (
    CRITERIA_FIELDS,
    ContentMismatch,
    export_request,
    version_create,
    version_diff,
    version_verify,
)
from spatiallab.prompts.api import service_errors

MAX_ID = 2**63 - 1
# A download is JSONL, Parquet or tar, by its format.
DOWNLOAD_TYPES = {(200, content_type): OpenApiTypes.BINARY for content_type in CONTENT_TYPES.values()}
SPLIT_PARAM = OpenApiParameter("split", str, enum=[s.value for s in Split],
                               description="Only this split (default: every split).")


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT

    def __init__(self, code: str, detail: str):
        super().__init__(detail=detail, code=code)
        self.detail = {"code": code, "detail": detail}


class DatasetRefusalSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="not_frozen, too_large_to_stream, content_mismatch, ...")
    detail = serializers.CharField()


def _etag(version: DatasetVersion, *parts: str) -> str | None:
    if version.status != VersionStatus.FROZEN:
        return None
    return '"' + "-".join([version.content_hash, *parts]) + '"'


def _not_modified(request, etag: str | None) -> bool:
    if not etag:
        return False
    wanted = request.headers.get("If-None-Match", "")
    return wanted.strip() == "*" or etag in [tag.strip() for tag in wanted.split(",")]


def _with_etag(response, etag: str | None):
    if etag:
        response["ETag"] = etag
        response["Cache-Control"] = "private, max-age=0, must-revalidate"
    return response


def _not_modified_response(etag: str) -> HttpResponse:
    return _with_etag(HttpResponse(status=status.HTTP_304_NOT_MODIFIED), etag)


# --- Serializers ------------------------------------------------------------------------------------------


class CriteriaSerializer(serializers.Serializer):
    queues = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), min_length=1,
                                   help_text="Verification queues whose verified pairs are taken.")
    generators = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
                                       required=False, default=list, help_text="Only these generators (empty: all).")
    rules = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False,
                                  default=list, help_text="Only pairs with an edit by one of these rules (empty: all).")
    n_edits = serializers.ChoiceField(choices=["", "1", "2-3"], required=False, default="", allow_blank=True,
                                      help_text='"1", "2-3" or "" (all).')
    min_agreement = serializers.FloatField(min_value=0, max_value=1, required=False, default=0.0,
                                           help_text="Share of answers saying only the chosen image follows.")
    include_adjudicated = serializers.BooleanField(required=False, default=True,
                                                   help_text="Whether pairs verified by adjudication count.")

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(CRITERIA_FIELDS))
            if unknown:
                raise serializers.ValidationError(f"Unknown criteria: {', '.join(map(str, unknown))}; known: "
                                                  f"{', '.join(CRITERIA_FIELDS)}.")
        return super().to_internal_value(data)


class RatiosSerializer(serializers.Serializer):
    train = serializers.FloatField(min_value=0, max_value=1)
    validation = serializers.FloatField(min_value=0, max_value=1)
    test = serializers.FloatField(min_value=0, max_value=1)


class DiffSerializer(serializers.Serializer):
    against = serializers.IntegerField(help_text="The version compared with (the parent).")
    against_name = serializers.CharField()
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    relabelled = serializers.IntegerField(help_text="In both, with another split or verification.")
    added_ids = serializers.ListField(child=serializers.IntegerField(), help_text="Pair ids (the first ones).")
    removed_ids = serializers.ListField(child=serializers.IntegerField())
    relabelled_ids = serializers.ListField(child=serializers.IntegerField())


class DatasetVersionSerializer(serializers.ModelSerializer):
    criteria = CriteriaSerializer(read_only=True)
    ratios = RatiosSerializer(read_only=True)
    card = serializers.DictField(read_only=True, help_text="Counts by split, relation type, number of edits, "
                                                           "generator, category and agreement; queue agreement.")
    diff = serializers.DictField(read_only=True, help_text="Against the parent (empty without one).")
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True, allow_null=True)
    downloads = serializers.SerializerMethodField(help_text="Format -> streaming download URL (frozen versions).")

    class Meta:
        model = DatasetVersion
        fields = ["id", "name", "description", "parent", "criteria", "ratios", "split_salt", "status", "build_job",
                  "content_hash", "entry_count", "card", "diff", "error", "created_by", "created_at", "frozen_at",
                  "downloads"]
        read_only_fields = fields

    def get_downloads(self, version) -> dict[str, str]:
        if version.status != VersionStatus.FROZEN:
            return {}
        return {fmt: reverse("api-dataset-version-download", args=[version.pk, fmt]) for fmt in EXTENSIONS}


class DatasetVersionCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    parent = serializers.PrimaryKeyRelatedField(queryset=DatasetVersion.objects.all(), required=False,
                                                allow_null=True, default=None,
                                                help_text="A frozen version this one revises (diffed against).")
    criteria = CriteriaSerializer(required=False, help_text="Default: the parent's.")
    ratios = RatiosSerializer(required=False, help_text="Default: the parent's, else 0.8 / 0.1 / 0.1.")
    split_salt = serializers.CharField(required=False, max_length=100, allow_blank=True,
                                       help_text="Default: the parent's (keeps every prompt in its split).")


class DatasetEntrySerializer(serializers.ModelSerializer):
    entry = serializers.JSONField(source="line", read_only=True, help_text="The canonical entry.")

    class Meta:
        model = DatasetEntry
        fields = ["pair", "split", "entry"]
        read_only_fields = fields

    def to_representation(self, instance):
        import json

        return {"pair": instance.pair_id, "split": instance.split, "entry": json.loads(instance.line)}


class DatasetExportSerializer(serializers.ModelSerializer):
    split = serializers.ChoiceField(choices=Split.choices, allow_blank=True, read_only=True,
                                    help_text="Empty: every split.")
    download = serializers.SerializerMethodField(help_text="Where the file is, once ready.")
    filename = serializers.CharField(read_only=True)

    class Meta:
        model = DatasetExport
        fields = ["id", "version", "format", "split", "status", "job", "filename", "size", "sha256", "rows",
                  "error", "created_at", "finished_at", "download"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_download(self, export) -> str | None:
        if export.status != "ready":
            return None
        return reverse("api-dataset-export-download", args=[export.pk])


class DatasetExportCreateSerializer(serializers.Serializer):
    version = serializers.PrimaryKeyRelatedField(queryset=DatasetVersion.objects.all())
    format = serializers.ChoiceField(choices=ExportFormat.choices)
    split = serializers.ChoiceField(choices=Split.choices, required=False, allow_blank=True, default="")


# --- Views ------------------------------------------------------------------------------------------------


def stream_response(version: DatasetVersion, fmt: str, split: str = "") -> StreamingHttpResponse:
    """A small export, streamed (the same code path as the job and the command). The stored entries are
    checked against the content hash first, so a tampered version is refused before any byte is sent."""
    if version.status != VersionStatus.FROZEN:
        raise Conflict("not_frozen", f"Dataset version {version.name!r} is {version.status}; only frozen versions "
                                     f"export.")
    if not streamable(version, fmt, split):
        raise Conflict("too_large_to_stream",
                       f"{selected_count(version, split):,} entries are too many to stream as {fmt}; create an "
                       f"export with POST {reverse('api-dataset-export-list')} (a job) and download it from there.")
    try:
        version_verify(version)
    except ContentMismatch as exc:
        raise Conflict("content_mismatch", str(exc)) from None
    response = StreamingHttpResponse(export_chunks(version, fmt, split), content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{export_filename(version, fmt, split)}"'
    response["Link"] = f'<{reverse("api-dataset-version-readme", args=[version.pk])}>; rel="describedby"'
    response["X-Dataset-Content-Hash"] = version.content_hash
    return response


@extend_schema(tags=["datasets"])
class DatasetVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                            viewsets.GenericViewSet):
    """Dataset versions: list, create (a build job), read. Frozen versions are immutable."""

    serializer_class = DatasetVersionSerializer
    permission_classes = [IsResearcher]
    filterset_class = DatasetVersionFilter

    def get_queryset(self):
        return versions_visible_to(self.request.user).select_related("created_by")

    @extend_schema(request=DatasetVersionCreateSerializer, responses={201: DatasetVersionSerializer})
    def create(self, request, *args, **kwargs):
        serializer = DatasetVersionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        parent = data["parent"]
        criteria = data.get("criteria") or (parent.criteria if parent else None)
        if criteria is None:
            raise serializers.ValidationError({"criteria": ["Give criteria (or a parent to take them from)."]})
        with service_errors():
            version = version_create(name=data["name"], description=data["description"], parent=parent,
                                     criteria=dict(criteria), ratios=data.get("ratios"),
                                     split_salt=data.get("split_salt"), created_by=request.user)
        return Response(DatasetVersionSerializer(version, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)

    def retrieve(self, request, *args, **kwargs):
        version = self.get_object()
        etag = _etag(version, "detail")
        if _not_modified(request, etag):
            return _not_modified_response(etag)
        return _with_etag(Response(self.get_serializer(version).data), etag)

    @extend_schema(parameters=[SPLIT_PARAM], responses={200: DatasetEntrySerializer(many=True)})
    @action(detail=True, methods=["get"], filterset_class=None)
    def entries(self, request, pk=None):
        """The version's entries in pair-id order (paged)."""
        version = self.get_object()
        queryset = DatasetEntry.objects.filter(version=version).order_by("pair_id")
        queryset = DatasetEntryFilter(request.query_params, queryset=queryset).qs
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(DatasetEntrySerializer(page, many=True).data)

    @extend_schema(responses={(200, "text/markdown"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def readme(self, request, pk=None):
        """The datasheet (README.md) of the version."""
        version = self.get_object()
        etag = _etag(version, "readme")
        if _not_modified(request, etag):
            return _not_modified_response(etag)
        return _with_etag(HttpResponse(version.readme, content_type="text/markdown; charset=utf-8"), etag)

    @extend_schema(parameters=[OpenApiParameter("against", int, required=False,
                                                description="Another version's id (default: the parent).")],
                   responses={200: DiffSerializer, 409: DatasetRefusalSerializer})
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def diff(self, request, pk=None):
        """Added, removed and relabelled pairs against the parent or another frozen version."""
        version = self.get_object()
        against = request.query_params.get("against")
        if against is None:
            if not version.parent_id:
                raise Conflict("no_parent", "This version has no parent; say which version to compare with "
                                            "(?against=<id>).")
            other = version.parent
        else:
            if not against.isdigit() or len(against) > 18:
                raise serializers.ValidationError({"against": ["A version id."]})
            other = get_object_or_404(self.get_queryset(), pk=int(against))
        if version.status != VersionStatus.FROZEN or other.status != VersionStatus.FROZEN:
            raise Conflict("not_frozen", "Both versions must be frozen.")
        if version.parent_id == other.pk and version.diff:
            return Response(version.diff)
        return Response(version_diff(other, version))

    @extend_schema(
        parameters=[OpenApiParameter("fmt", str, OpenApiParameter.PATH, enum=list(EXTENSIONS)), SPLIT_PARAM],
        responses={**DOWNLOAD_TYPES, 304: None, 409: DatasetRefusalSerializer})
    @action(detail=True, methods=["get"], url_path=r"download/(?P<fmt>jsonl|parquet|tar)", filterset_class=None,
            pagination_class=None)
    def download(self, request, pk=None, fmt=""):
        """Streams a small export (JSONL, Parquet or tar); larger ones are made with POST /dataset-exports/."""
        version = self.get_object()
        split = request.query_params.get("split", "")
        if split not in ("", *Split.values):
            raise serializers.ValidationError({"split": [f"One of {', '.join(Split.values)}."]})
        etag = _etag(version, fmt, split or "all")
        if _not_modified(request, etag):
            return _not_modified_response(etag)
        return _with_etag(stream_response(version, fmt, split), etag)


@extend_schema(tags=["datasets"])
class DatasetExportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                           viewsets.GenericViewSet):
    """Export files made by jobs (any size), downloadable with their SHA-256 once ready."""

    serializer_class = DatasetExportSerializer
    permission_classes = [IsResearcher]
    filterset_class = DatasetExportFilter

    def get_queryset(self):
        return exports_visible_to(self.request.user).select_related("version")

    @extend_schema(request=DatasetExportCreateSerializer,
                   responses={201: DatasetExportSerializer, 200: DatasetExportSerializer,
                              409: DatasetRefusalSerializer})
    def create(self, request, *args, **kwargs):
        """Starts an export job, or returns the export of this version, format and split that exists already."""
        serializer = DatasetExportCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = get_object_or_404(versions_visible_to(request.user), pk=data["version"].pk)
        try:
            with service_errors():
                export, created = export_request(version=version, fmt=data["format"], split=data["split"],
                                                 created_by=request.user)
        except NotFrozen as exc:
            raise Conflict("not_frozen", str(exc)) from None
        return Response(DatasetExportSerializer(export).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(responses={**DOWNLOAD_TYPES, 304: None, 409: DatasetRefusalSerializer})
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def download(self, request, pk=None):
        """The export's file; its SHA-256 is in the ETag and the X-Checksum-SHA256 header."""
        export = self.get_object()
        if export.status != "ready":
            raise Conflict("not_ready", f"The export is {export.status}.")
        etag = f'"{export.sha256}"'
        if _not_modified(request, etag):
            return _not_modified_response(etag)
        response = FileResponse(default_storage.open(export.file, "rb"), as_attachment=True,
                                filename=export.filename, content_type=CONTENT_TYPES[export.format])
        response["X-Checksum-SHA256"] = export.sha256
        response["Content-Length"] = str(export.size)
        return _with_etag(response, etag)
