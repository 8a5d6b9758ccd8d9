"""One seed per run for every random timing of the fault tests.

``PINNACLE_TEST_SEED=<n>`` replays a run; otherwise the seed is random (pytest-xdist workers
derive it from the run's id), printed in the pytest report header, and the seed of each test
(derived from it and the test's name) is in its id.
"""

from __future__ import annotations

import os
import random

__all__ = ["BASE_SEED", "derived_seed"]


def _base_seed() -> int:
    text = os.environ.get("PINNACLE_TEST_SEED")
    if text:
        return int(text)
    # pytest-xdist workers collect separately and must derive the same test ids: they share
    # the run's id (scripts/test sets PINNACLE_TEST_SEED, so this is for a bare `pytest -n`).
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id:
        return random.Random(run_id).randrange(1, 2**31)
    return random.SystemRandom().randrange(1, 2**31)


#: The seed of every random timing in this run.
BASE_SEED = _base_seed()


def derived_seed(name: str, index: int = 0) -> int:
    """A seed for one test (and trial), derived from :data:`BASE_SEED` and its name."""
    return random.Random(f"{BASE_SEED}-{name}-{index}").randrange(1, 2**31)
