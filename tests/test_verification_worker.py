"""Large queues are built by a job: the queue is created `building`, serves nothing, and a real Celery worker
adds its items in chunks (resumable, never twice) and opens it."""

import pytest
from django.test import override_settings

from spatiallab.jobs.models import Job, JobStatus
from spatiallab.verification.models import QueueItem, QueueStatus, VerificationQueue
from spatiallab.verification.selectors import queues_open_to
from spatiallab.verification.services import (
    VerificationError,
    item_claim,
    queue_build_finish,
    queue_build_items,
    queue_build_total,
    queue_create,
    queue_update,
    verdict_submit,
)
from tests.factories import UserFactory
from tests.verification_data import make_pairs
from tests.worker_procs import wait_for


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_large_queue_is_built_by_a_job_on_a_real_worker(workers, researcher):
    workers.start(queues="cpu")  # first: the pool points this process's broker at the worker's
    pairs = make_pairs(12)
    with override_settings(VERIFICATION_SYNC_ITEMS=5):
        build = queue_create(name="large", overlap=2, selection={"generator": pairs[0].generator_id}, gold_count=2,
                             gold_share=0.2, created_by=researcher)
    queue = build.queue
    assert (build.items, build.gold, queue.status) == (10, 2, QueueStatus.BUILDING)
    assert QueueItem.objects.filter(queue=queue, is_gold=False).count() == 0  # nothing yet: the job adds them
    annotator = UserFactory(role="annotator")
    assert queue not in queues_open_to(annotator)
    with pytest.raises(VerificationError):
        item_claim(queue=queue, user=annotator)

    job = Job.objects.get(pk=queue.build_job_id)
    assert job.kind == "build_queue" and job.created_by == researcher
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED, timeout=60, message="build job")
    job.refresh_from_db()
    queue.refresh_from_db()
    assert queue.status == QueueStatus.ACTIVE
    assert (job.progress_done, job.progress_total, job.result) == (10, 10, {"queue": queue.pk, "items": 10})
    regular = QueueItem.objects.filter(queue=queue, is_gold=False)
    assert regular.count() == 10 and regular.values("pair").distinct().count() == 10
    gold_pairs = set(QueueItem.objects.filter(queue=queue, is_gold=True).values_list("pair_id", flat=True))
    assert not gold_pairs & set(regular.values_list("pair_id", flat=True))
    lease = item_claim(queue=queue, user=annotator)
    verdict_submit(user=annotator, assignment_id=lease.assignment_id, choice="left")


@pytest.mark.django_db
def test_building_in_chunks_resumes_without_duplicates_and_keeps_the_limit():
    pairs = make_pairs(9)
    with override_settings(VERIFICATION_SYNC_ITEMS=2):
        queue = queue_create(name="big", overlap=3, selection={"generator": pairs[0].generator_id},
                             gold=[(pairs[0].pk, True)], gold_share=0.1, limit=6).queue
    assert queue.status == QueueStatus.BUILDING and queue_build_total(queue=queue) == 6
    with pytest.raises(Exception) as error:  # a researcher cannot open it before the job is done
        queue_update(queue=queue, status=QueueStatus.ACTIVE)
    assert "status" in error.value.message_dict
    added, last = queue_build_items(queue=queue, after=0, size=4)
    assert added == 4
    again, last_again = queue_build_items(queue=queue, after=0, size=4)  # a resumed job repeats its last chunk
    assert (again, last_again) == (0, last)
    rest, end = queue_build_items(queue=queue, after=last, size=2)
    assert rest == 2
    regular = list(QueueItem.objects.filter(queue=queue, is_gold=False).order_by("pair_id")
                   .values_list("pair_id", flat=True))
    assert regular == [p.pk for p in pairs[1:7]]  # the first six pairs after the gold one, in id order
    assert queue_build_items(queue=queue, after=end, size=5)[0] == 2  # the two pairs beyond the limit, if asked
    queue_build_finish(queue=queue)
    assert VerificationQueue.objects.get(pk=queue.pk).status == QueueStatus.ACTIVE


@pytest.mark.django_db
def test_small_queues_are_built_at_once():
    pairs = make_pairs(4)
    build = queue_create(name="small", selection={"generator": pairs[0].generator_id})
    assert (build.queue.status, build.queue.build_job_id, build.items) == (QueueStatus.ACTIVE, None, 4)
    assert QueueItem.objects.filter(queue=build.queue).count() == 4


@pytest.mark.django_db
def test_the_api_and_the_queue_page_show_a_queue_being_built(api, client, researcher):
    pairs = make_pairs(5)
    with override_settings(VERIFICATION_SYNC_ITEMS=2):
        response = api.post("/api/v1/queues/", {"name": "by job", "selection": {"generator": pairs[0].generator_id}},
                            format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    queue = VerificationQueue.objects.get(pk=body["id"])
    assert (body["status"], body["build_job"]) == ("building", queue.build_job_id) and queue.build_job_id
    client.force_login(researcher)
    page = client.get(f"/dashboard/queues/{queue.pk}/").content.decode()
    assert 'id="queue-building"' in page and f"/dashboard/jobs/{queue.build_job_id}/" in page
    assert 'data-status="paused"' not in page  # no status buttons until the job opens it
