from spatiallab.accounts.roles import ANNOTATION_ROLES, DASHBOARD_ROLES, has_any_role, user_roles


def roles(request):
    user = request.user
    return {
        "user_roles": sorted(user_roles(user)),
        "can_annotate": has_any_role(user, ANNOTATION_ROLES),
        "can_dashboard": has_any_role(user, DASHBOARD_ROLES),
        "can_admin": user.is_authenticated and user.is_staff,
    }
