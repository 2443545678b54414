"""Runs one job in a worker: claim the row, keep its heartbeat alive, call the kind's handler, store the
outcome. Shared by every job kind; handlers only do their work and report progress through `JobContext`."""

import logging
import os
import socket
import threading
import traceback
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from spatiallab.jobs.services import (
    Claim,
    JobCancelled,
    JobLost,
    job_claim,
    job_fail,
    job_heartbeat,
    job_mark_cancelled,
    job_report_progress,
    job_succeed,
)
from workers.handlers import HANDLERS

logger = logging.getLogger(__name__)
WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class JobContext:
    """What a handler sees: its params, where to resume from, and how to report progress."""

    claim: Claim

    @property
    def params(self) -> dict:
        return self.claim.job.params

    @property
    def checkpoint(self) -> dict:
        return self.claim.job.checkpoint

    def progress(self, done: int, total: int | None = None, message: str = "", checkpoint: dict | None = None):
        """Stores progress and (optionally) the state to resume from. Raises JobCancelled/JobLost to stop."""
        job_report_progress(claim=self.claim, done=done, total=total, message=message, checkpoint=checkpoint)


class _Heartbeat(threading.Thread):
    """Touches the job's heartbeat while a long step runs, so the stale-job sweep leaves it alone."""

    def __init__(self, claim: Claim):
        super().__init__(daemon=True, name=f"heartbeat-job-{claim.job.pk}")
        self.claim = claim
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.JOB_HEARTBEAT_SECONDS):
                if not job_heartbeat(claim=self.claim):
                    return
        except Exception:  # a failed heartbeat must never kill the job; the sweep copes with gaps
            logger.exception("heartbeat for job %s failed", self.claim.job.pk)
        finally:
            connection.close()  # this thread's own connection


def run_job(job_id: int) -> None:
    claim = job_claim(job_id=job_id, worker_name=WORKER_NAME)
    if claim is None:
        return
    job = claim.job
    logger.info("job %s (%s) attempt %s/%s", job.pk, job.kind, job.attempts, job.max_attempts)
    heartbeat = _Heartbeat(claim)
    heartbeat.start()
    try:
        result = HANDLERS[job.kind](JobContext(claim))
        job_succeed(claim=claim, result=result or {})
    except JobCancelled:
        job_mark_cancelled(claim=claim)
        logger.info("job %s cancelled", job.pk)
    except JobLost as exc:
        logger.warning("%s", exc)
    except Exception:
        logger.exception("job %s failed", job.pk)
        job_fail(claim=claim, error=traceback.format_exc())
    finally:
        heartbeat.stopped.set()
        heartbeat.join(timeout=5)
