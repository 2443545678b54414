"""Test data for dataset versions: a queue whose items get real verdicts through the verification services
(claim, then submit), and jobs run in-process through the same handler a worker calls."""

from spatiallab.datasets.models import DatasetVersion
from spatiallab.datasets.services import version_create
from spatiallab.jobs.models import Job
from spatiallab.jobs.services import job_claim, job_succeed
from spatiallab.verification.models import Answer
from spatiallab.verification.services import item_claim, verdict_submit
from tests.factories import UserFactory
from tests.verification_data import make_pairs, make_queue
from workers.handlers import HANDLERS
from workers.runner import JobContext

CHOICE = {Answer.WINNER: ("left", "right"), Answer.LOSER: ("right", "left"), Answer.BOTH: ("both", "both"),
          Answer.NEITHER: ("neither", "neither"), Answer.UNSURE: ("unsure", "unsure")}


def answer_queue(queue, answers: dict[int, list[str]], annotators) -> None:
    """Each annotator claims items until the queue has none for them and answers with `answers[pair id][i]`
    (the annotator's index i; a pair without answers gets 'winner' from everyone)."""
    for index, user in enumerate(annotators):
        while (lease := item_claim(queue=queue, user=user)) is not None:
            if lease.pair_id not in answers and queue.items.filter(pair_id=lease.pair_id, is_gold=True).exists():
                answer = Answer.WINNER
            else:
                answer = answers.get(lease.pair_id, [Answer.WINNER] * len(annotators))[index]
            verdict_submit(user=user, assignment_id=lease.assignment_id,
                           choice=CHOICE[answer][0 if lease.winner_left else 1])


def verified_pairs(count: int = 12, *, answers_for=None, seeds_per_prompt: int = 2, name: str = "verified",
                   **queue_options):
    """`count` pairs in a queue of overlap 3 (quorum 2), every item answered by three annotators;
    answers_for(pairs) -> {pair id: [three answers]} shapes the outcome. Returns (pairs, queue)."""
    pairs = make_pairs(count, seeds_per_prompt=seeds_per_prompt, name=f"{name}-prompts")
    queue = make_queue(pairs, name=name, overlap=3, **queue_options)
    annotators = [UserFactory(role="annotator") for _ in range(3)]
    answer_queue(queue, answers_for(pairs) if answers_for else {}, annotators)
    return pairs, queue


def run_job_inline(job: Job) -> dict:
    """Runs a job through its kind's handler, exactly as a worker would (claim, handler, succeed)."""
    claim = job_claim(job_id=job.pk, worker_name="inline-test")
    assert claim is not None, f"job {job.pk} could not be claimed"
    result = HANDLERS[job.kind](JobContext(claim))
    job_succeed(claim=claim, result=result or {})
    return result


def build_version(name: str = "v1", *, criteria: dict, **options) -> DatasetVersion:
    version = version_create(name=name, criteria=criteria, **options)
    run_job_inline(version.build_job)
    return DatasetVersion.objects.get(pk=version.pk)
