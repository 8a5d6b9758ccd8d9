"""Jobs: task specs as plain data, the worker side that runs them, and the driver that watches.

* :data:`TASK_KINDS` maps a task kind (``"predict"``) to the module-level function a worker
  runs; :func:`run_task` is the one function handed to every compute backend, and it looks the
  kind up there, so no code travels with a task, only its name.
* :mod:`pinnacledb.jobs._driver` submits a job, updates its :class:`JobRecord` as tasks finish
  and implements ``db.wait`` / ``db.cancel``.

How workers get credentials: a task carries the store URIs as the Datalayer was configured
(passwords included; they never appear in task keys, task names, reprs, logs or job records).
For a Dask cluster you do not control the transport of, configure the stores with URIs without
passwords and give the workers credentials in their environment (``PGPASSWORD``,
``AWS_ACCESS_KEY_ID``, ...), which the drivers read themselves.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Final

from pinnacle_protocols.compute import Task
from pinnacle_protocols.errors import ConfigError
from pinnacle_protocols.records import JSONValue

__all__ = ["TASK_KINDS", "run_task"]

#: Task kind -> ``module:function`` the worker runs. Only kinds listed here can run.
TASK_KINDS: Final[Mapping[str, str]] = {
    "predict": "pinnacledb.jobs._predict:run_predict_task",
    "listener": "pinnacledb.jobs._listener:run_listener_task",
}


def run_task(task: Task) -> JSONValue:
    """Run ``task`` with the function its kind names in :data:`TASK_KINDS` (on a worker)."""
    target = TASK_KINDS.get(task.kind)
    if target is None:
        raise ConfigError(
            f"unknown task kind {task.kind!r}; this pinnacledb runs {sorted(TASK_KINDS)}. "
            "Install the same pinnacledb version on the workers as on the client."
        )
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    result: JSONValue = function(task)
    return result
