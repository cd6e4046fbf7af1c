"""The one job-state machine used by the database, the API and the workers: the states, which are terminal, and
which transitions exist. The job verbs (shared/jobs.py) derive the states each write may start from here."""
from __future__ import annotations

import enum


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED})

ALLOWED_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELED}),
    # running -> queued is a retry after a lost worker (attempts is incremented).
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED, JobState.QUEUED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELED: frozenset(),
}


class BatchState(str, enum.Enum):
    """A batch's state, derived from its row and its items' states (shared/batches.py), never stored."""

    EXPANDING = "expanding"         # a worker is still turning its source (manifest, zip, S3 prefix) into items
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELED = "canceled"
    FAILED = "failed"               # its source could not be expanded at all (the reason is on the batch)


# A retry (POST /v1/jobs/{id}/retry) leaves the old job as it is and submits its stored input again as a new job.
RETRYABLE_STATES = frozenset({JobState.FAILED})


def sources_of(target: JobState) -> frozenset[JobState]:
    """Every state a job may move to ``target`` from."""
    return frozenset(source for source, targets in ALLOWED_TRANSITIONS.items() if target in targets)


def parse_state(value: JobState | str) -> JobState:
    """The state named ``value``; ValueError whose message lists the choices when there is none."""
    try:
        return JobState(value)
    except ValueError:
        raise ValueError(", ".join(state.value for state in JobState)) from None
