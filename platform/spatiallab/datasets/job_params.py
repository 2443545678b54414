"""Parameters of the dataset jobs (validated by the shared job service before a job is stored)."""

from rest_framework import serializers


class BuildDatasetParams(serializers.Serializer):
    version = serializers.IntegerField(help_text="Id of the dataset version (status building) to build.")

    def validate_version(self, value: int) -> int:
        from spatiallab.datasets.models import DatasetVersion, VersionStatus

        if not DatasetVersion.objects.filter(pk=value, status=VersionStatus.BUILDING).exists():
            raise serializers.ValidationError(f"No dataset version {value} waiting to be built.")
        return value


class ExportDatasetParams(serializers.Serializer):
    export = serializers.IntegerField(help_text="Id of the export (status building) to write.")

    def validate_export(self, value: int) -> int:
        from spatiallab.datasets.models import DatasetExport, ExportStatus

        if not DatasetExport.objects.filter(pk=value, status=ExportStatus.BUILDING).exists():
            raise serializers.ValidationError(f"No export {value} waiting to be written.")
        return value
