from django.db.models import QuerySet

from spatiallab.accounts.roles import DASHBOARD_ROLES, has_any_role
from spatiallab.jobs.models import ACTIVE_STATUSES, Job


def jobs_visible_to(user) -> QuerySet[Job]:
    """Researchers and admins share one team view of all jobs; nobody else sees any."""
    if not has_any_role(user, DASHBOARD_ROLES):
        return Job.objects.none()
    return Job.objects.select_related("created_by")


def jobs_any_active(jobs) -> bool:
    return any(job.status in ACTIVE_STATUSES for job in jobs)
