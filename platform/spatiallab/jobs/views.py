from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from spatiallab.accounts.roles import DASHBOARD_ROLES, role_required
from spatiallab.jobs.forms import DemoPrimesForm
from spatiallab.jobs.selectors import jobs_any_active, jobs_visible_to
from spatiallab.jobs.services import job_cancel, job_create

RECENT_JOBS = 50


def _table_context(request):
    jobs = list(jobs_visible_to(request.user)[:RECENT_JOBS])
    return {"jobs": jobs, "poll": jobs_any_active(jobs)}


@role_required(*DASHBOARD_ROLES)
def dashboard(request):
    context = _table_context(request)
    context["form"] = DemoPrimesForm()
    return render(request, "jobs/dashboard.html", context)


@role_required(*DASHBOARD_ROLES)
def jobs_table(request):
    return render(request, "jobs/_jobs_table.html", _table_context(request))


@role_required(*DASHBOARD_ROLES)
@require_POST
def job_launch_demo(request):
    form = DemoPrimesForm(request.POST)
    if form.is_valid():
        try:
            job_create(kind="demo_primes", params=form.cleaned_data, created_by=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
    if not form.is_valid():
        status = 400
        context = {**_table_context(request), "form": form}
        if request.htmx:
            return render(request, "jobs/_launch_form.html", context, status=status)
        return render(request, "jobs/dashboard.html", context, status=status)
    if request.htmx:
        response = render(request, "jobs/_launch_form.html", {"form": DemoPrimesForm(), "launched": True})
        response["HX-Trigger"] = "jobs-changed"
        return response
    return redirect("dashboard")


@role_required(*DASHBOARD_ROLES)
@require_POST
def job_cancel_view(request, pk: int):
    job = get_object_or_404(jobs_visible_to(request.user), pk=pk)
    job_cancel(job=job)
    if request.htmx:
        return render(request, "jobs/_jobs_table.html", _table_context(request))
    return redirect("job-detail", pk=pk)


@role_required(*DASHBOARD_ROLES)
def job_detail(request, pk: int):
    job = get_object_or_404(jobs_visible_to(request.user), pk=pk)
    template = "jobs/_job_card.html" if request.htmx else "jobs/job_detail.html"
    return render(request, template, {"job": job})
