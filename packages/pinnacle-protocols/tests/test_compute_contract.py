"""The ComputeBackend contract on the in-process reference backend, and the task records."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pinnacle_protocols.compute import (
    InlineComputeBackend,
    JobProgress,
    Task,
    TaskResult,
    TaskStatus,
    execute_task,
    job_state,
    task_key,
)
from pinnacle_protocols.errors import InvalidRecord
from pinnacle_protocols.testing import ComputeBackendContract
from pinnacle_protocols.testing._compute import SECRET, failing_or_square


class TestInlineContract(ComputeBackendContract):
    @pytest.fixture
    def make_backend(self) -> Iterator[InlineComputeBackend]:
        backend = InlineComputeBackend.from_uri("local://")
        yield backend
        backend.close()


def test_task_payload_must_be_json() -> None:
    with pytest.raises(InvalidRecord, match="payload"):
        Task(task_id="0", kind="k", payload={"x": object()})  # type: ignore[dict-item]


def test_task_repr_redacts_store_passwords() -> None:
    task = Task(task_id="0", kind="k", payload={"md": f"postgres://u:{SECRET}@h/db"})
    assert SECRET not in repr(task)
    assert SECRET not in str(task)
    assert "postgres://u:" in repr(task)


def test_execute_task_never_raises_and_redacts() -> None:
    task = Task(task_id="3", kind="k", payload={"n": 3, "fail": True})
    result = execute_task(failing_or_square, task, retries=2)
    assert result.status is TaskStatus.FAILED
    assert result.attempts == 3
    assert result.error is not None
    assert SECRET not in result.error
    assert result.exception is None
    kept = execute_task(failing_or_square, task, keep_exception=True)
    assert isinstance(kept.exception, ValueError)


def test_job_state_from_task_states() -> None:
    def r(s: TaskStatus) -> TaskResult:
        return TaskResult(task_id="x", status=s)

    q, run, ok, bad, c = (
        TaskStatus.QUEUED,
        TaskStatus.RUNNING,
        TaskStatus.SUCCESS,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
    )
    assert job_state([r(q), r(q)]) is q
    assert job_state([r(ok), r(q)]) is run
    assert job_state([r(ok), r(ok)]) is ok
    assert job_state([r(ok), r(bad)]) is bad
    assert job_state([r(ok), r(c)], cancelled=True) is c
    assert job_state([r(run), r(c)], cancelled=True) is run
    assert JobProgress(job_id="j", tasks=(r(ok),)).finished


def test_task_keys_hold_only_the_job_id() -> None:
    assert task_key("predict-abc", 3) == "pinnacle-predict-abc-3"


def test_submission_is_validated() -> None:
    backend = InlineComputeBackend()
    with pytest.raises(InvalidRecord, match="unique"):
        backend.submit(
            "j", [Task(task_id="0", kind="k"), Task(task_id="0", kind="k")], failing_or_square
        )
    with pytest.raises(InvalidRecord, match="retries"):
        backend.submit("j", [], failing_or_square, retries=-1)
