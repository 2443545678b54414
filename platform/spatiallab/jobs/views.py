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


def run_control_view(*, runs_visible_to, resume, detail_url_name: str):
    """The POST view behind a training run's Cancel and Resume buttons (reward runs, GRPO runs): `resume` is the
    app's resume service, `runs_visible_to(user)` the runs the user may control."""
    from django.contrib import messages
    from django.urls import reverse

    from spatiallab.jobs.runs import run_cancel

    @role_required(*DASHBOARD_ROLES)
    @require_POST
    def run_control(request, pk: int, action: str):
        run = get_object_or_404(runs_visible_to(request.user), pk=pk)
        try:
            if action == "cancel":
                run_cancel(run=run)
                messages.success(request, "Cancel requested: the run stops at its next step.")
            else:
                resume(run=run, created_by=request.user)
                messages.success(request, "Resumed: a new job continues from the last checkpoint.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect(reverse(detail_url_name, args=[run.pk]))

    return run_control
