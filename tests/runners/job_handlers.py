"""Job handlers that exist only in tests. Importing this module registers them in the ledger's
registry; the worker subprocesses import it through CELERY_IMPORTS (tests/runners/worker_settings.py)."""

from __future__ import annotations

import os
import time
from typing import Any

from apps.core.audit import audit_record
from apps.runners.models import Job
from apps.runners.services import jobs

RAN = "test.job_ran"


def record(job: Job) -> dict[str, Any]:
    """The side effect to count: one audit row per execution that completed (it commits with the
    completion). Payload switches: `hang_on_attempt` blocks that attempt (so a test can kill the
    worker holding the lease); `crash_process` ends the worker process as an OOM kill would."""
    if job.payload.get("crash_process"):
        os._exit(1)
    if job.payload.get("hang_on_attempt") == job.attempts:
        time.sleep(600)
    audit_record(
        action=RAN, actor_label="system:test", target=job, after={"attempt": job.attempts, "worker": job.leased_by}
    )
    return {"attempt": job.attempts, "worker": job.leased_by}


def fail(job: Job) -> dict[str, Any]:
    raise RuntimeError("the handler failed on purpose")


def fail_permanently(job: Job) -> dict[str, Any]:
    raise jobs.JobPermanentError("the payload can never work")


jobs.JOB_HANDLERS.update(
    {
        "test.record": f"{__name__}.record",
        "test.fail": f"{__name__}.fail",
        "test.fail_permanently": f"{__name__}.fail_permanently",
    }
)
