"""Celery tasks: thin wrappers that hand a job id to the runner. Routed by name (settings.CELERY_TASK_ROUTES)."""

from workers.app import app
from workers.runner import run_job


@app.task(name="workers.run_cpu_job", ignore_result=True)
def run_cpu_job(job_id: int) -> None:
    run_job(job_id)


@app.task(name="workers.run_gpu_job", ignore_result=True)
def run_gpu_job(job_id: int) -> None:
    run_job(job_id)


@app.task(name="workers.requeue_stale_jobs", ignore_result=True)
def requeue_stale_jobs() -> list[int]:
    from spatiallab.jobs.services import jobs_requeue_stale

    return jobs_requeue_stale()


@app.task(name="workers.expire_verification_leases", ignore_result=True)
def expire_verification_leases() -> int:
    from spatiallab.verification.services import leases_expire

    return leases_expire()
