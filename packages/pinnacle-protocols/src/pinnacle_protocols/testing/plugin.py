"""The pinnacle_protocols pytest plugin (``pytest11`` entry point).

* Registers the Hypothesis profiles ``dev`` (fast, the default), ``ci`` (at least 200
  examples per state machine) and ``deep`` (400 examples of 50 steps, no example database, so a
  run is determined by its seed; contract size knobs are ignored; ``scripts/fuzz`` runs it for
  a time budget) and loads ``dev`` unless ``HYPOTHESIS_PROFILE`` names another one;
  Hypothesis's own ``--hypothesis-profile`` option overrides both.
* Applies the ``known_gaps`` marks of contract classes to their inherited tests.
* Turns ``@pytest.mark.notimpl(reason=..., raises=...)`` and ``@pytest.mark.notyet(...)`` into
  ``pytest.mark.xfail(strict=True, raises=..., reason=...)``: a known gap must keep failing with
  exactly that error, and the mark must be removed once it passes.

Importing this module is cheap and works without Hypothesis installed (profiles are then
simply not registered).
"""

from __future__ import annotations

import os

import pytest

__all__ = ["CI_PROFILE", "DEEP_PROFILE", "DEV_PROFILE", "GAP_MARKERS", "register_profiles"]

DEV_PROFILE = "dev"
CI_PROFILE = "ci"
DEEP_PROFILE = "deep"
#: Markers that declare a known gap; both become strict xfails.
GAP_MARKERS = ("notimpl", "notyet")


def register_profiles() -> None:
    """Register the ``dev``, ``ci`` and ``deep`` Hypothesis profiles (no-op without Hypothesis)."""
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # pragma: no cover - the [testing] extra installs Hypothesis
        return
    suppressed = [HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile(
        DEV_PROFILE,
        max_examples=25,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=suppressed,
        print_blob=True,
    )
    settings.register_profile(
        CI_PROFILE,
        max_examples=200,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=suppressed,
        derandomize=False,
        print_blob=True,
    )
    # Issue 19: 400 x 40 found on MariaDB in 9 minutes what 200 x 30 (ci) did not.
    settings.register_profile(
        DEEP_PROFILE,
        max_examples=400,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=suppressed,
        derandomize=False,
        database=None,
        print_blob=True,
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", DEV_PROFILE))


# Hypothesis's pytest plugin loads --hypothesis-profile in its own pytest_configure; run ours
# first so the profiles exist by then.
@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Declare the gap markers; register the profiles before ``--hypothesis-profile`` applies."""
    for name in GAP_MARKERS:
        config.addinivalue_line(
            "markers", f"{name}(reason, raises): a known gap; becomes a strict xfail with raises="
        )
    register_profiles()


def _apply_known_gaps(item: pytest.Item) -> None:
    cls = getattr(item, "cls", None)
    gaps = getattr(cls, "known_gaps", None)
    if not gaps:
        return
    original = getattr(item, "originalname", item.name)
    for key in (item.name, original):
        mark = gaps.get(key)
        if mark is not None:
            item.add_marker(mark)
            return


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Apply contract ``known_gaps``; turn ``notimpl`` / ``notyet`` into strict xfails."""
    for item in items:
        _apply_known_gaps(item)
        for name in GAP_MARKERS:
            for mark in item.iter_markers(name=name):
                reason = mark.kwargs.get("reason") or (mark.args[0] if mark.args else None)
                raises = mark.kwargs.get("raises")
                if not reason or raises is None:
                    raise pytest.UsageError(
                        f"{item.nodeid}: @pytest.mark.{name} needs reason= and raises= "
                        "(the exception the gap raises), e.g. "
                        f"@pytest.mark.{name}(reason='...', raises=UnsupportedOperation)"
                    )
                item.add_marker(
                    pytest.mark.xfail(strict=True, raises=raises, reason=f"{name}: {reason}")
                )
