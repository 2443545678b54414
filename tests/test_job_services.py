"""Job lifecycle rules in the service layer: validation, enqueue on commit, claim, cancel, progress, the
attempt cap, stale-worker requeue, and ETA. The broker is the real embedded one (a filesystem folder)."""

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from spatiallab.jobs.models import Job, JobStatus
from spatiallab.jobs.services import (
    JobCancelled,
    JobLost,
    job_cancel,
    job_claim,
    job_create,
    job_fail,
    job_report_progress,
    job_succeed,
    jobs_requeue_stale,
)
from tests.factories import JobFactory
from tests.worker_procs import BrokerConfig, broker_state, point_test_process_at, restore_broker_state
from workers.app import app


@pytest.fixture
def broker(tmp_path):
    """A fresh, empty filesystem broker for the test process; messages can be read back from it."""
    saved = broker_state()
    config = BrokerConfig("filesystem", tmp_path)
    config.apply()
    yield config
    restore_broker_state(saved)


def queued_messages(queue: str) -> list:
    messages = []
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            messages.append(message)
    return messages


@pytest.mark.django_db
class TestCreate:
    def test_valid_job_is_stored_queued_and_enqueued_only_after_commit(
        self, researcher, broker, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            job = job_create(kind="demo_primes", params={"limit": 5000, "chunks": 5}, created_by=researcher)
        assert queued_messages("cpu") == []  # not before the commit
        assert len(callbacks) == 1
        callbacks[0]()
        job.refresh_from_db()
        assert (job.status, job.queue, job.created_by) == (JobStatus.QUEUED, "cpu", researcher)
        assert job.params == {"limit": 5000, "chunks": 5, "step_delay": 0.0}  # defaults filled in
        [message] = queued_messages("cpu")
        assert message.headers["task"] == "workers.run_cpu_job"
        assert message.decode()[0] == [job.pk]
        assert queued_messages("gpu") == []

    @pytest.mark.parametrize("kind", ["filesystem", "redis"])
    def test_gpu_job_message_lands_only_in_the_gpu_queue(
        self, researcher, kind, tmp_path, monkeypatch, django_capture_on_commit_callbacks
    ):
        """Both queues declared (as running cpu and gpu workers do), a gpu job reaches the gpu queue only. The
        Redis transport keeps bindings in Redis, shared by every process, so a wrong binding shows up there."""
        from spatiallab.jobs import kinds

        saved = broker_state()
        config = BrokerConfig(kind, tmp_path)
        config.apply()
        config.purge()
        with app.connection_for_write() as conn:
            for queue in app.amqp.queues.values():
                queue(conn.default_channel).declare()

        monkeypatch.setitem(kinds.JOB_KINDS, "demo_primes",
                            kinds.JobKind("demo_primes", "demo on gpu", "gpu", kinds.DemoPrimesParams))
        with django_capture_on_commit_callbacks(execute=True):
            job = job_create(kind="demo_primes", params={}, created_by=researcher)
        try:
            assert queued_messages("cpu") == []
            [message] = queued_messages("gpu")
            assert message.headers["task"] == "workers.run_gpu_job" and message.decode()[0] == [job.pk]
        finally:
            restore_broker_state(saved)

    def test_rolled_back_transaction_enqueues_nothing(self, researcher, broker, django_capture_on_commit_callbacks):
        with (
            django_capture_on_commit_callbacks(execute=True) as callbacks,
            pytest.raises(RuntimeError),
            transaction.atomic(),
        ):
            job_create(kind="demo_primes", params={}, created_by=researcher)
            raise RuntimeError("the caller's transaction failed")
        assert callbacks == []
        assert Job.objects.count() == 0
        assert queued_messages("cpu") == []

    @pytest.mark.parametrize(
        ("kind", "params", "field", "text"),
        [
            ("demo_primes", {"limit": 5}, "params", "limit: Ensure this value is greater than or equal to 10."),
            ("demo_primes", {"limit": 100, "chunks": 500}, "params", "chunks: must not exceed limit."),
            ("demo_primes", {"chunks": "many"}, "params", "chunks: A valid integer is required."),
            ("nope", {}, "kind", "Unknown job kind 'nope'"),
        ],
    )
    def test_bad_input_names_the_field_and_stores_nothing(self, researcher, kind, params, field, text):
        with pytest.raises(ValidationError) as info:
            job_create(kind=kind, params=params, created_by=researcher)
        assert any(text in message for message in info.value.message_dict[field])
        assert Job.objects.count() == 0

    def test_unreachable_broker_fails_the_job_instead_of_leaving_it_queued(
        self, researcher, django_capture_on_commit_callbacks
    ):
        saved = broker_state()
        point_test_process_at("redis://127.0.0.1:9/0", {})
        app.conf.broker_connection_timeout = 0.5
        app.conf.task_publish_retry = False
        try:
            with pytest.raises(Exception), django_capture_on_commit_callbacks(execute=True):  # noqa: B017
                job = job_create(kind="demo_primes", params={}, created_by=researcher)
        finally:
            app.conf.broker_connection_timeout = 4.0
            app.conf.task_publish_retry = True
            restore_broker_state(saved)
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED
        assert "Could not enqueue the job" in job.error


@pytest.mark.django_db
class TestClaim:
    def test_first_claim_starts_attempt_one(self):
        job = JobFactory()
        claim = job_claim(job_id=job.pk, worker_name="w1")
        job.refresh_from_db()
        assert (job.status, job.attempts, job.worker_token, job.worker_name) == (
            JobStatus.RUNNING, 1, claim.token, "w1")
        assert job.started_at == job.run_started_at and job.heartbeat_at is not None

    def test_a_job_held_by_a_live_worker_is_not_claimed_again(self):
        job = JobFactory()
        assert job_claim(job_id=job.pk) is not None
        assert job_claim(job_id=job.pk) is None
        job.refresh_from_db()
        assert job.attempts == 1

    def test_a_stale_job_is_reclaimed_and_resumes_from_its_progress(self, settings):
        job = JobFactory()
        first = job_claim(job_id=job.pk)
        job_report_progress(claim=first, done=4, total=10, checkpoint={"next_chunk": 4})
        Job.objects.filter(pk=job.pk).update(
            heartbeat_at=timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 1))
        second = job_claim(job_id=job.pk)
        assert second is not None and second.token != first.token
        assert (second.job.attempts, second.job.run_started_done, second.job.checkpoint) == (2, 4, {"next_chunk": 4})
        # The lost worker, should it wake up, can no longer write.
        with pytest.raises(JobLost):
            job_report_progress(claim=first, done=5)
        with pytest.raises(JobLost):
            job_succeed(claim=first, result={"late": True})
        job.refresh_from_db()
        assert (job.progress_done, job.result, job.status) == (4, {}, JobStatus.RUNNING)

    def test_out_of_attempts_fails_with_an_explanation(self):
        job = JobFactory(status=JobStatus.RUNNING, attempts=3, max_attempts=3, heartbeat_at=None)
        assert job_claim(job_id=job.pk) is None
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED
        assert "Gave up after 3 attempts" in job.error and job.finished_at is not None

    @pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED])
    def test_finished_jobs_are_never_run_again(self, status):
        job = JobFactory(status=status)
        assert job_claim(job_id=job.pk) is None
        job.refresh_from_db()
        assert (job.status, job.attempts) == (status, 0)

    def test_missing_job_is_dropped(self):
        assert job_claim(job_id=987654) is None


@pytest.mark.django_db
class TestCancelAndProgress:
    def test_cancelling_a_queued_job_is_immediate(self):
        job = job_cancel(job=JobFactory())
        assert job.status == JobStatus.CANCELLED and job.finished_at is not None
        assert job_claim(job_id=job.pk) is None

    def test_cancelling_a_running_job_stops_it_at_the_next_progress_report(self):
        job = JobFactory()
        claim = job_claim(job_id=job.pk)
        job_report_progress(claim=claim, done=1, total=5)
        job = job_cancel(job=job)
        assert job.status == JobStatus.RUNNING and job.cancel_requested
        with pytest.raises(JobCancelled):
            job_report_progress(claim=claim, done=2)
        job.refresh_from_db()
        assert job.progress_done == 1

    def test_cancelling_a_finished_job_changes_nothing(self):
        job = JobFactory(status=JobStatus.SUCCEEDED, result={"x": 1})
        job = job_cancel(job=job)
        assert job.status == JobStatus.SUCCEEDED and not job.cancel_requested

    def test_progress_and_failure_are_recorded(self):
        job = JobFactory()
        claim = job_claim(job_id=job.pk)
        job_report_progress(claim=claim, done=3, total=9, message="chunk 3/9", checkpoint={"next_chunk": 3})
        job_fail(claim=claim, error="Traceback ... ValueError: bad input on line 7")
        job.refresh_from_db()
        assert (job.status, job.progress_done, job.progress_total, job.progress_message) == (
            JobStatus.FAILED, 3, 9, "chunk 3/9")
        assert "line 7" in job.error and job.finished_at is not None

    def test_rate_and_eta_measure_the_current_attempt(self):
        now = timezone.now()
        job = JobFactory.build(status=JobStatus.RUNNING, progress_done=60, progress_total=100,
                               run_started_at=now - timedelta(seconds=20), run_started_done=20)
        assert job.rate_per_second(now) == pytest.approx(2.0)
        assert job.eta(now) == timedelta(seconds=20)
        assert job.percent == pytest.approx(60.0)
        assert JobFactory.build(status=JobStatus.QUEUED).eta(now) is None
        assert JobFactory.build(status=JobStatus.SUCCEEDED, progress_total=0).percent == 100.0


@pytest.mark.django_db
class TestRequeueStale:
    def test_only_jobs_with_a_stale_heartbeat_are_requeued(self, broker, settings,
                                                           django_capture_on_commit_callbacks):
        old = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 5)
        stale = JobFactory(status=JobStatus.RUNNING, attempts=1, heartbeat_at=old)
        fresh = JobFactory(status=JobStatus.RUNNING, attempts=1, heartbeat_at=timezone.now())
        cancelling = JobFactory(status=JobStatus.RUNNING, attempts=1, heartbeat_at=old, cancel_requested=True)
        with django_capture_on_commit_callbacks(execute=True):
            assert jobs_requeue_stale() == [stale.pk]
        for job in (stale, fresh, cancelling):
            job.refresh_from_db()
        assert (stale.status, stale.attempts, stale.worker_token) == (JobStatus.QUEUED, 1, None)
        assert fresh.status == JobStatus.RUNNING
        assert cancelling.status == JobStatus.CANCELLED
        [message] = queued_messages("cpu")
        assert message.decode()[0] == [stale.pk]


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_of_one_job_have_exactly_one_winner():
    """Two workers receive the same message at the same moment (a redelivery race): one runs it."""
    for _ in range(10):
        job = JobFactory()
        barrier = threading.Barrier(4)
        results = []

        def claim(barrier, results, job_id):
            try:
                barrier.wait()
                results.append(job_claim(job_id=job_id))
            finally:
                connection.close()

        threads = [threading.Thread(target=claim, args=(barrier, results, job.pk)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [r for r in results if r is not None]
        assert len(results) == 4 and len(winners) == 1
        job.refresh_from_db()
        assert job.attempts == 1 and job.worker_token == winners[0].token
