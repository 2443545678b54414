"""Who sees which dataset versions and exports: the research team (researchers and admins) sees all of them,
everyone else (annotators) none."""

from django.db.models import QuerySet

from spatiallab.accounts.roles import DASHBOARD_ROLES, has_any_role
from spatiallab.datasets.models import DatasetExport, DatasetVersion


def versions_visible_to(user) -> QuerySet[DatasetVersion]:
    queryset = DatasetVersion.objects.all()
    return queryset if has_any_role(user, DASHBOARD_ROLES) else queryset.none()


def exports_visible_to(user) -> QuerySet[DatasetExport]:
    queryset = DatasetExport.objects.all()
    return queryset if has_any_role(user, DASHBOARD_ROLES) else queryset.none()
