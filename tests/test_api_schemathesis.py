"""Property-based test of the REST API against its own OpenAPI schema (Schemathesis, in-process over WSGI).

Every operation of /api/v1/schema/ is called by a researcher (token authentication) with data generated from
the schema; each response must not be a server error and must conform to the schema: a documented status code,
a documented content type and a body that matches the documented schema. Path ids are drawn partly from seeded
rows (a prompt set with perturbed prompts, pairs, a queue with leased and answered assignments, jobs, a failure)
so that detail and action endpoints answer with real objects, not only 404s.
"""

import io

import pytest
import schemathesis
from django.core import signals
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from spatiallab.accounts.services import token_rotate
from spatiallab.datasets.services import export_request
from spatiallab.generation.models import GenerationFailure
from spatiallab.grpo.models import GrpoCheckpoint, GrpoMetric, GrpoRun, GrpoSample
from spatiallab.grpo.services import config_defaults as grpo_defaults
from spatiallab.jobs.models import Job
from spatiallab.prompts.models import PerturbationRule, PerturbedPrompt, Prompt
from spatiallab.rewards.models import (
    RewardCheckpoint,
    RewardEvaluation,
    RewardMetric,
    RewardRun,
    ScoreRequest,
    ScoreRequestKind,
)
from spatiallab.rewards.services import config_defaults, pair_scores_store
from spatiallab.verification.models import Assignment
from spatiallab.verification.services import item_claim, verdict_submit
from tests.dataset_data import build_version, run_job_inline, verified_pairs
from tests.factories import JobFactory, UserFactory
from tests.verification_data import make_pairs, make_queue

SCHEMA_PATH = "/api/v1/schema/?format=json"
MAX_EXAMPLES = 20
GENERATE_PATH = "/api/v1/prompt-sets/generate/"
MAX_GENERATED_PROMPTS = 20

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def seeded(db, researcher):
    """Real rows for every kind of id in the API's paths, keyed by the collection's path segment. Ids are in pk
    order: Hypothesis draws the first ones most, and the researcher's own assignments come before the
    annotator's."""
    pairs = make_pairs(6, name="schemathesis")
    queue = make_queue(pairs, name="schemathesis queue", overlap=2)
    # The researcher answered one item (undo has something to take back) and holds a live lease on another; an
    # annotator's lease is an assignment the researcher must never reach.
    answered = item_claim(queue=queue, user=researcher)
    verdict_submit(user=researcher, assignment_id=answered.assignment_id, choice="left", seconds=2.0,
                   client_key=None)
    item_claim(queue=queue, user=researcher)
    item_claim(queue=queue, user=UserFactory(username="schemathesis-annotator", role="annotator"))
    first = pairs[0]
    GenerationFailure.objects.create(job=JobFactory(), generator=first.generator, perturbed_id=first.perturbed_id,
                                     seed=7, prompt_text="a cat left of a dog", perturbed_text="a cat right of a dog",
                                     error="RuntimeError: out of memory")
    prompt_set = PerturbedPrompt.objects.get(pk=first.perturbed_id).prompt.prompt_set
    # A frozen dataset version with a parent (so its diff answers without ?against=) and a ready export.
    dataset_queue = verified_pairs(4, name="schemathesis-dataset")[1]
    parent = build_version("schemathesis-parent", criteria={"queues": [dataset_queue.pk], "min_agreement": 1.0})
    version = build_version("schemathesis-version", criteria={"queues": [dataset_queue.pk]}, parent=parent)
    export, _ = export_request(version=version, fmt="jsonl")
    run_job_inline(export.job)
    reward_run = RewardRun.objects.create(name="schemathesis-run", dataset_version=version,
                                          dataset_hash=version.content_hash, base_model="/models/tiny",
                                          config=config_defaults())
    RewardMetric.objects.create(run=reward_run, step=1, kind="train", values={"loss": 0.69, "accuracy": 0.5})
    checkpoint = RewardCheckpoint.objects.create(run=reward_run, step=1, path="/runs/1/checkpoints/step-00000001")
    evaluation = RewardEvaluation.objects.create(
        run=reward_run, checkpoint=checkpoint, step=1, checkpoint_path=checkpoint.path, dataset_version=version,
        dataset_hash=version.content_hash, split="test", status="succeeded",
        report={"pairs": 0, "overall": {"accuracy": None, "correct": 0, "n": 0, "ci95": [None, None]}})
    pair_scores_store(checkpoint_id=checkpoint.pk, rows=[(first.pk, 0.5, -1.0, 0.1, -1.0)])
    image = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(image, format="PNG")
    score_request = ScoreRequest.objects.create(
        kind=ScoreRequestKind.UPLOAD, checkpoint=checkpoint, checkpoint_path=checkpoint.path,
        images=[{"name": default_storage.save("score-requests/schemathesis/0.png", ContentFile(image.getvalue())),
                 "prompt": "a red square", "filename": "0.png"}])
    grpo_run = GrpoRun.objects.create(name="schemathesis-grpo", generator=first.generator, base_model="/models/flux",
                                      reward="brightness-left-right", train_prompt_set=prompt_set,
                                      eval_prompt_set=prompt_set, config=grpo_defaults())
    GrpoMetric.objects.create(run=grpo_run, step=1, kind="train", values={"reward_mean": 0.1, "kl": 0.0})
    grpo_checkpoint = GrpoCheckpoint.objects.create(run=grpo_run, step=1, path="/runs/grpo/checkpoints/step-00000001")
    GrpoSample.objects.create(run=grpo_run, step=0, prompt_index=0, prompt="a red square", seed=1,
                              image=score_request.images[0]["name"], reward=0.5)

    def ids(queryset) -> list[int]:
        return list(queryset.order_by("pk").values_list("pk", flat=True))

    return {
        "assignments": ids(Assignment.objects.filter(queue=queue)),
        "dataset-exports": [export.pk],
        "dataset-versions": [version.pk],
        "generation-failures": ids(GenerationFailure.objects.all()),
        "generators": [first.generator_id],
        "items": ids(queue.items.all()),
        "jobs": ids(Job.objects.all()),
        "pairs": [pair.pk for pair in pairs],
        "perturbation-rules": ids(PerturbationRule.objects.all()),
        "perturbed-prompts": ids(PerturbedPrompt.objects.all()),
        "prompt-sets": [prompt_set.pk],
        "prompts": ids(Prompt.objects.filter(prompt_set=prompt_set)),
        "queues": [queue.pk],
        "reward-runs": [reward_run.pk],
        "reward-checkpoints": [checkpoint.pk],
        "reward-evaluations": [evaluation.pk],
        "score-requests": [score_request.pk],
        "grpo-runs": [grpo_run.pk],
        "grpo-checkpoints": [grpo_checkpoint.pk],
    }


@pytest.fixture
def auth_headers(researcher):
    return {"Authorization": f"Token {token_rotate(user=researcher).key}"}


@pytest.fixture
def _connection_kept_open():
    """The WSGI handler closes the database connection when a request ends, which would close the test's
    transaction; Django's own test client disconnects the same receivers around each request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(seeded, auth_headers, _connection_kept_open):
    from spatiallab.wsgi import application

    config = schemathesis.Config.from_dict({"generation": {"mode": "positive"}})
    schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, application, config=config, headers=auth_headers)

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        # Half of the cases address a seeded row of the collection (the first path segment after /api/v1/).
        collection = context.operation.path.split("/")[3]
        ids = seeded.get(collection)
        key = "queue_pk" if "queue_pk" in (path_parameters or {}) else "id"
        if not ids or key not in (path_parameters or {}):
            return st.just(path_parameters)
        # A seeded score request has one image: address it too.
        extra = {"index": 0} if "index" in path_parameters else {}
        return st.one_of(st.just(path_parameters),
                         st.sampled_from(ids).map(lambda pk: {**path_parameters, key: pk, **extra}))

    @schema.hook
    def map_body(context, body):
        # Generating takes time linear in `count` (up to 100,000 prompts); the generator has tests of its own.
        if context.operation.path == GENERATE_PATH and isinstance(body, dict) and isinstance(body.get("count"), int):
            return {**body, "count": min(body["count"], MAX_GENERATED_PROMPTS)}
        return body

    return schema


HYPOTHESIS = settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, print_blob=True,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                             HealthCheck.data_too_large])


def test_api_conforms_to_its_schema(api_schema, auth_headers):
    # schemathesis.pytest.from_fixture would run each operation as a subtest, but it reads pytest's private
    # Node._nodeid, which pytest 9.2 no longer has; so each operation runs here as its own Hypothesis test.
    statuses: dict[str, set[int]] = {}
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        statuses[operation.label] = seen = set()
        try:
            _check(operation, auth_headers, seen)
        except (Exception, BaseExceptionGroup) as exc:  # every operation runs; all failures are reported together
            failures.append(f"{operation.label}:\n{exc}")
    assert len(statuses) >= 40, sorted(statuses)  # the filters left the API's operations in
    assert not failures, f"{len(failures)} of {len(statuses)} operations fail:\n\n" + "\n\n".join(failures)
    # The seeded ids reach real rows: every read of one object found one at least once, not only 404s.
    missed = [label for label, codes in statuses.items() if label.startswith("GET") and "{" in label
              and 200 not in codes]
    assert not missed, statuses


def _check(operation, headers: dict, seen: set[int]) -> None:
    """One operation's Hypothesis test: generated requests, every response checked; `seen` collects statuses."""

    @HYPOTHESIS
    @given(case=operation.as_strategy(GenerationMode.POSITIVE))
    def conforms(case):
        # The per-user throttle (1200/min) would answer 429 part-way through; test_api.py tests throttling.
        cache.clear()
        seen.add(case.call_and_validate(headers=headers, checks=CHECKS).status_code)

    conforms()
