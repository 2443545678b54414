"""Filters of the dataset endpoints (django-filter)."""

import django_filters

from spatiallab.datasets.models import (
    DatasetEntry,
    DatasetExport,
    DatasetVersion,
    ExportFormat,
    ExportStatus,
    Split,
    VersionStatus,
)


class DatasetVersionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=VersionStatus.choices)
    name = django_filters.CharFilter(lookup_expr="icontains", label="Name contains")
    content_hash = django_filters.CharFilter(label="Exact content hash")

    class Meta:
        model = DatasetVersion
        fields = ["status", "name", "parent", "content_hash"]


class DatasetEntryFilter(django_filters.FilterSet):
    split = django_filters.ChoiceFilter(choices=Split.choices)

    class Meta:
        model = DatasetEntry
        fields = ["split"]


class DatasetExportFilter(django_filters.FilterSet):
    # Not `format`: DRF reads ?format= as the response format (URL_FORMAT_OVERRIDE).
    file_format = django_filters.ChoiceFilter(field_name="format", choices=ExportFormat.choices,
                                              label="File format")
    status = django_filters.ChoiceFilter(choices=ExportStatus.choices)

    class Meta:
        model = DatasetExport
        fields = ["version", "file_format", "status"]
