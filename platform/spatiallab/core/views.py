from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render

from spatiallab.accounts.roles import ANNOTATION_ROLES, DASHBOARD_ROLES, has_any_role


def home(request):
    """Sends each role to its own area."""
    if not request.user.is_authenticated:
        return redirect("login")
    if has_any_role(request.user, DASHBOARD_ROLES):
        return redirect("dashboard")
    if has_any_role(request.user, ANNOTATION_ROLES):
        return redirect("annotate")
    return render(request, "core/no_role.html", status=403)


def healthz(request):
    """Liveness for load balancers and docker-compose: the process answers and the database responds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def permission_denied(request, exception=None):
    return render(request, "403.html", {"reason": str(exception or "")}, status=403)
