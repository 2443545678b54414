"""Roles are Django groups. A superuser holds every role."""

from collections.abc import Iterable
from enum import StrEnum
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission


class Role(StrEnum):
    ANNOTATOR = "annotator"
    RESEARCHER = "researcher"
    ADMIN = "admin"


# Who may open which area. Admins reach everything; researchers can open the annotation pages to preview them.
ANNOTATION_ROLES = (Role.ANNOTATOR, Role.RESEARCHER, Role.ADMIN)
DASHBOARD_ROLES = (Role.RESEARCHER, Role.ADMIN)


def user_roles(user) -> set[Role]:
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return set(Role)
    cached = getattr(user, "_spatiallab_roles", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = {role for role in Role if role.value in names}
        user._spatiallab_roles = cached
    return cached


def has_any_role(user, roles: Iterable[Role]) -> bool:
    return bool(user_roles(user) & set(roles))


def role_required(*roles: Role):
    """View decorator: anonymous users go to the login page, users without one of `roles` get 403."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_any_role(request.user, roles):
                raise PermissionDenied("Your role does not give access to this page.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


class HasRole(BasePermission):
    """DRF permission: set `required_roles` on the view."""

    message = "Your role does not give access to this endpoint."

    def has_permission(self, request, view) -> bool:
        return has_any_role(request.user, getattr(view, "required_roles", ()))


class IsResearcher(HasRole):
    def has_permission(self, request, view) -> bool:
        return has_any_role(request.user, DASHBOARD_ROLES)
