"""The job path end to end with real Celery worker processes, on each broker."""

import pytest

from spatiallab.jobs.models import Job, JobStatus
from spatiallab.jobs.services import job_cancel, job_create, jobs_requeue_stale
from tests.worker_procs import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

BROKERS = ["filesystem", "redis"]


def _status(job_id):
    return Job.objects.get(pk=job_id).status


@pytest.mark.parametrize("broker", BROKERS)
def test_demo_job_runs_to_success_with_correct_result(workers, researcher, broker):
    workers.use_broker(broker)
    workers.start()
    job = job_create(kind="demo_primes", params={"limit": 1_000_000, "chunks": 8}, created_by=researcher)

    wait_for(lambda: _status(job.pk) == JobStatus.SUCCEEDED, message="job to succeed")
    job.refresh_from_db()
    assert job.result == {"limit": 1_000_000, "prime_count": 78498, "largest_prime": 999983}
    assert (job.progress_done, job.progress_total) == (8, 8)
    assert job.attempts == 1
    assert job.started_at <= job.finished_at


@pytest.mark.parametrize("broker", BROKERS)
def test_gpu_kind_queue_is_served_only_by_a_gpu_worker(workers, researcher, broker, monkeypatch):
    """Routing: a job on the gpu queue waits while only a cpu worker runs, and runs once a gpu worker starts."""
    from spatiallab.jobs import kinds

    gpu_demo = kinds.JobKind("demo_primes", "demo on gpu", "gpu", kinds.DemoPrimesParams)
    monkeypatch.setitem(kinds.JOB_KINDS, "demo_primes", gpu_demo)
    workers.use_broker(broker)
    workers.start(queues="cpu")
    job = job_create(kind="demo_primes", params={"limit": 10_000, "chunks": 2}, created_by=researcher)
    assert job.queue == "gpu"
    with pytest.raises(AssertionError):
        wait_for(lambda: _status(job.pk) != JobStatus.QUEUED, timeout=3, message="cpu worker to leave it alone")
    workers.start(queues="gpu")
    wait_for(lambda: _status(job.pk) == JobStatus.SUCCEEDED, message="gpu worker to run it")


def test_cancel_stops_a_running_job(workers, researcher):
    workers.start()
    job = job_create(kind="demo_primes", params={"limit": 100_000, "chunks": 100, "step_delay": 0.1},
                     created_by=researcher)
    wait_for(lambda: Job.objects.get(pk=job.pk).progress_done >= 3, message="job to make progress")
    job_cancel(job=Job.objects.get(pk=job.pk))
    wait_for(lambda: _status(job.pk) == JobStatus.CANCELLED, message="worker to stop the job")
    job.refresh_from_db()
    assert job.progress_done < 100
    assert job.result == {}


def test_failing_handler_marks_job_failed_with_traceback(workers, researcher):
    from spatiallab.jobs.services import job_create as create

    workers.start()
    job = create(kind="demo_primes", params={"limit": 1000, "chunks": 10}, created_by=researcher)
    # Corrupt the params after validation, as a handler bug would surface: the worker must record the error.
    Job.objects.filter(pk=job.pk).update(params={"limit": 1000})
    wait_for(lambda: _status(job.pk) == JobStatus.FAILED, message="job to fail")
    job.refresh_from_db()
    assert "KeyError" in job.error and "chunks" in job.error
    assert job.attempts == 1


@pytest.mark.parametrize("broker", BROKERS)
def test_killed_worker_job_resumes_from_checkpoint_without_duplicate_work(workers, researcher, broker):
    workers.use_broker(broker)
    first = workers.start()
    job = job_create(kind="demo_primes", params={"limit": 1_000_000, "chunks": 40, "step_delay": 0.15},
                     created_by=researcher)
    wait_for(lambda: Job.objects.get(pk=job.pk).progress_done >= 10, message="progress before the crash")
    first.kill()
    crashed = Job.objects.get(pk=job.pk)
    assert crashed.status == JobStatus.RUNNING and crashed.checkpoint["next_chunk"] >= 10

    # A live heartbeat protects the job; once it is stale the sweep queues it again.
    assert jobs_requeue_stale(stale_seconds=3600) == []
    assert jobs_requeue_stale(stale_seconds=0) == [job.pk]
    second = workers.start()
    wait_for(lambda: _status(job.pk) == JobStatus.SUCCEEDED, timeout=60, message="resumed job to finish")

    job.refresh_from_db()
    assert job.result["prime_count"] == 78498
    assert job.attempts == 2
    # The second attempt started where the checkpoint was, not at zero.
    assert job.run_started_done == crashed.checkpoint["next_chunk"]
    assert "resuming" in second.output() or job.run_started_done > 0


def test_job_that_keeps_killing_its_worker_gives_up_after_max_attempts(workers, researcher, settings):
    workers.start()
    job = job_create(kind="demo_primes", params={"limit": 100_000, "chunks": 100, "step_delay": 0.1},
                     created_by=researcher)
    Job.objects.filter(pk=job.pk).update(max_attempts=2)
    for attempt in (1, 2):
        wait_for(lambda attempt=attempt: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=attempt)
                 .exists(), message=f"attempt {attempt}")
        workers.procs[-1].kill()
        assert jobs_requeue_stale(stale_seconds=0) == [job.pk]
        workers.start()
    wait_for(lambda: _status(job.pk) == JobStatus.FAILED, message="job to give up")
    job.refresh_from_db()
    assert job.attempts == 2
    assert "Gave up after 2 attempts" in job.error


def test_second_delivery_of_a_running_job_is_refused(workers, researcher):
    """A duplicate message (redelivery while the first worker is alive) must not start a second run."""
    from celery import current_app

    workers.start()
    workers.start()
    job = job_create(kind="demo_primes", params={"limit": 200_000, "chunks": 30, "step_delay": 0.1},
                     created_by=researcher)
    wait_for(lambda: _status(job.pk) == JobStatus.RUNNING, message="job to start")
    current_app.send_task("workers.run_cpu_job", args=[job.pk], queue="cpu")
    wait_for(lambda: _status(job.pk) == JobStatus.SUCCEEDED, message="job to finish")
    job.refresh_from_db()
    assert job.attempts == 1
    logs = "".join(w.output() for w in workers.procs)
    assert "held by a live worker" in logs
    assert logs.count(f"job {job.pk} (demo_primes) attempt") == 1
