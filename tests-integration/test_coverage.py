"""The matrix covers every installed scheme, and every service it needs is there.

A scheme that an installed distribution registers must be a test target, an alias of one (and
then build the same store class, checked by a round trip here), or be listed in
``NOT_TESTABLE`` with the reason. Anything else fails: adding a scheme to a package means
adding a target (or a reason) to ``pinnacle_it/targets.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
from pinnacle_it.matrix import Matrix
from pinnacle_it.services import SERVICES, Services
from pinnacle_it.targets import (
    ALIASES,
    NOT_TESTABLE,
    TARGETS,
    Role,
    Target,
    active_targets,
    coverage_problem,
    entry_point,
    entry_point_class,
    registered_schemes,
)

from pinnacle_protocols.records import ComponentRecord, DType, Field, Schema
from pinnacle_protocols.uri import RedactedURI

ROLES: tuple[Role, ...] = ("databackend", "metadata", "artifact_store")


def _registered() -> list[Any]:
    return [
        pytest.param(role, scheme, id=f"{role}-{scheme}")
        for role in ROLES
        for scheme in sorted(registered_schemes(role))
    ]


@pytest.mark.parametrize(("role", "scheme"), _registered())
def test_every_registered_scheme_is_covered(role: Role, scheme: str) -> None:
    """Fails for a scheme with neither a target, an alias nor a not-testable reason."""
    problem = coverage_problem(role, scheme)
    registered_by = [ep.value for ep in registered_schemes(role)[scheme]]
    assert problem is None, f"{problem} (registered by {registered_by})"


def test_coverage_check_can_fail() -> None:
    """A scheme nobody listed is reported; so is one listed twice."""
    problem = coverage_problem("databackend", "newdb")
    assert problem is not None
    assert "no test target" in problem
    assert coverage_problem("databackend", "postgres") is None
    assert coverage_problem("databackend", "snowflake") is None
    assert coverage_problem("artifact_store", "filesystem") is None


def test_tables_name_only_registered_schemes() -> None:
    """Aliases, not-testable entries and targets name schemes some package registers."""
    stale = [
        f"{role} {scheme}"
        for role, scheme in [*ALIASES, *NOT_TESTABLE]
        if scheme not in registered_schemes(role)
    ]
    stale += [t.id for t in TARGETS if t.scheme not in registered_schemes(t.role)]
    assert not stale, f"entries for schemes nobody registers (remove them): {stale}"


def test_every_role_has_targets() -> None:
    """Each role's matrix is not empty and every target's marker is declared."""
    for role in ROLES:
        assert active_targets(role), f"no {role} target: is anything installed?"


def test_target_markers_are_declared(pytestconfig: pytest.Config) -> None:
    """``pytest -m <name>`` works for every target marker."""
    declared = {line.split(":")[0].split("(")[0].strip() for line in pytestconfig.getini("markers")}
    missing = sorted({m for t in TARGETS for m in t.marks} - declared)
    assert not missing, f"markers used by targets but not declared in pyproject.toml: {missing}"


# ---------------------------------------------------------------------------- aliases
def _alias_params() -> list[Any]:
    out = []
    for (role, alias), scheme in sorted(ALIASES.items()):
        if alias not in registered_schemes(role):
            continue
        target = next(t for t in active_targets(role) if t.scheme == scheme)
        marks = [getattr(pytest.mark, m) for m in target.marks]
        out.append(pytest.param(target, alias, id=f"{role}-{alias}", marks=marks))
    return out


def _round_trip(role: Role, store: Any) -> None:
    if role == "databackend":
        store.create_table("alias_probe", Schema(fields=(Field(name="k", dtype=DType.INT),)))
        store.insert("alias_probe", [{"k": 1}, {"k": 2}])
        assert store.count("alias_probe", {"k": {"$gt": 1}}) == 1
        store.drop_table("alias_probe")
    elif role == "metadata":
        rec = store.create_component(ComponentRecord(type_id="probe", identifier="alias"))
        assert store.get_component("probe", "alias").version == rec.version == 0
        store.delete_component_version("probe", "alias", 0)
    else:
        ref = store.put(b"alias probe")
        assert store.get(ref) == b"alias probe"
        store.delete(ref)


@pytest.mark.parametrize(("target", "alias"), _alias_params())
def test_alias_builds_the_same_store(matrix: Matrix, target: Target, alias: str) -> None:
    """An alias scheme (``postgresql``, ``mariadb``, ``filesystem``, ``s3a``) builds the target's
    store class and works on the target's service."""
    assert entry_point_class(target.role, alias) is entry_point_class(target.role, target.scheme)
    maker = matrix.maker(target)
    try:
        if target.role == "metadata" and target.name in ("postgres", "mariadb"):
            server = matrix.services.require(target.name)
            uri = server.uri_of(server.create_database(), scheme=target.scheme)
        else:
            uri, _ = maker.uri()
        aliased = RedactedURI.parse(uri).with_scheme(alias).reveal()
        store = entry_point(target.role, alias).load()(aliased)
        try:
            assert store.uri.scheme == alias
            _round_trip(target.role, store)
        finally:
            store.close()
    finally:
        maker.close()


# ---------------------------------------------------------------------------- services
def _service_params() -> list[Any]:
    return [
        pytest.param(name, id=name, marks=[getattr(pytest.mark, name)])
        for name, spec in SERVICES.items()
        if spec.required
    ]


@pytest.mark.parametrize("name", _service_params())
def test_service_is_available(services: Services, name: str) -> None:
    """Every service the matrix uses runs (with CI=true a missing one fails here too)."""
    handle = services.require(name)
    assert handle is not None


def test_missing_service_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that is down: a skip on a contributor's machine, a failure with CI=true or when
    it was configured explicitly through its variable."""
    dead = "postgres://nobody@127.0.0.1:1/nothing"
    monkeypatch.setitem(SERVICES, "postgres", attrs.evolve(SERVICES["postgres"], default=dead))
    monkeypatch.delenv("PINNACLE_TEST_POSTGRES_URI", raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="CI=true"):
        Services(tmp_path).require("postgres")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="every service must run"):
        Services(tmp_path).require("postgres")
    monkeypatch.delenv("CI")
    monkeypatch.setenv("PINNACLE_TEST_POSTGRES_URI", dead)
    with pytest.raises(pytest.fail.Exception, match="unavailable"):
        Services(tmp_path).require("postgres")


def test_prewarm_imports_shared_modules_before_its_threads(tmp_path: Path) -> None:
    """Regression: a prewarm thread importing numpy raced Hypothesis in the main thread.

    CI's fuzz run failed in ``sampled_from`` with "partially initialized module 'numpy' has no
    attribute 'ndarray'": a service start imported numpy in a prewarm thread while the first
    state machine read ``sys.modules["numpy"]``. ``prewarm`` now imports such modules in the
    calling thread first; checked in a fresh interpreter, where nothing has imported them yet.
    """
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from pinnacle_it.services import IMPORTED_BEFORE_PREWARM, Services
        assert "numpy" not in sys.modules, "imported too early: the check would pass anyway"
        services = Services(Path({str(tmp_path)!r}))
        threads = services.prewarm([])
        assert threads == []
        for name in IMPORTED_BEFORE_PREWARM:
            module = sys.modules[name]
            assert module.__spec__ is not None and not getattr(
                module.__spec__, "_initializing", False
            ), name
        assert sys.modules["numpy"].ndarray is not None
        services.close()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
