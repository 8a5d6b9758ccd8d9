"""The serializer registry: every built-in round trip, no pickle in numpy, trust."""

from __future__ import annotations

import importlib.util
import io
import pickle
from collections.abc import Callable

import numpy as np
import pytest

from pinnacle_protocols.errors import SerializationError, UntrustedSerializerError
from pinnacledb.serializers import PICKLE_FAMILY, SerializerRegistry, default_serializers

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _extra(module: str) -> None:
    """Skip unless ``module`` of the optional extra ``pinnacledb[serializers]`` is installed.

    A workspace installed with every extra (``uv sync --all-extras``, CI) always runs these.
    """
    pytest.importorskip(module, reason=f"{module} comes with the extra pinnacledb[serializers]")


def test_json_roundtrip() -> None:
    reg = SerializerRegistry()
    value = {"a": [1, 2.5, None, True], "b": "é"}
    assert reg.loads("json", reg.dumps("json", value), what="x") == value
    with pytest.raises(SerializationError, match="json"):
        reg.dumps("json", {"x": float("nan")})


def test_numpy_roundtrip_without_pickle() -> None:
    reg = SerializerRegistry()
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    data = reg.dumps("numpy", arr)
    assert data.startswith(b"\x93NUMPY")
    out = reg.loads("numpy", data, what="x")
    np.testing.assert_array_equal(out, arr)
    assert out.dtype == np.float32


def test_numpy_refuses_object_arrays() -> None:
    reg = SerializerRegistry()
    with pytest.raises(SerializationError, match="pickle"):
        reg.dumps("numpy", np.array([{"a": 1}], dtype=object))


_NPY_CASES = [
    np.full(64, 3, np.float32),
    np.arange(12).reshape(3, 4),
    np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    np.array(5),
    np.array(["ab", "c"]),
    np.array([True, False]),
    np.arange(6, dtype=">i4").reshape(2, 3),
    np.zeros((0, 3)),
    np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
]


@pytest.mark.parametrize("arr", _NPY_CASES, ids=lambda a: f"{a.dtype}{a.shape}")
def test_numpy_load_is_np_load(arr: np.ndarray) -> None:
    """The header-cached loader gives np.load's array: dtype, shape, order, own writable memory
    (twice: the second load takes the cached header)."""
    reg = SerializerRegistry()
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    data = buf.getvalue()
    want = np.load(io.BytesIO(data), allow_pickle=False)
    for _ in range(2):
        got = reg.loads("numpy", data, what="x")
        assert got.dtype == want.dtype
        assert got.shape == want.shape
        assert got.flags.f_contiguous == want.flags.f_contiguous
        assert got.flags.c_contiguous == want.flags.c_contiguous
        assert got.flags.writeable
        assert got.flags.owndata or (got.base is not None and got.base.flags.owndata)
        np.testing.assert_array_equal(got, want)


def test_numpy_load_of_damaged_bytes_raises_like_np_load() -> None:
    buf = io.BytesIO()
    np.save(buf, np.arange(10.0), allow_pickle=False)
    data = buf.getvalue()
    for bad in (data[:-3], data[:20], data[:8] + b"\xff\xff" + data[10:]):
        with pytest.raises(SerializationError, match="EOF"):
            SerializerRegistry().loads("numpy", bad, what="x")


def test_numpy_load_refuses_pickled_payloads() -> None:
    """A .npy with an object array (pickle inside) is refused on load, not executed."""
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SerializationError, match="numpy"):
        SerializerRegistry().loads("numpy", buf.getvalue(), what="x")


def test_safetensors_roundtrip() -> None:
    _extra("safetensors")
    reg = SerializerRegistry()
    weights = {"w": np.ones((2, 3), dtype=np.float32), "b": np.zeros(3, dtype=np.float64)}
    out = reg.loads("safetensors", reg.dumps("safetensors", weights), what="x")
    assert set(out) == {"w", "b"}
    np.testing.assert_array_equal(out["w"], weights["w"])
    with pytest.raises(SerializationError, match="dict"):
        reg.dumps("safetensors", np.ones(2))


@pytest.mark.parametrize("name", ["pickle", "dill", "cloudpickle"])
def test_pickle_family_needs_trust(name: str) -> None:
    if name != "pickle":
        _extra(name)
    value = {"f": (1, 2), "s": {3}}
    data = SerializerRegistry().dumps(name, value)
    with pytest.raises(UntrustedSerializerError, match=f"trust_serializers={{'{name}'}}"):
        SerializerRegistry().loads(name, data, what="artifact 'x'")
    assert SerializerRegistry(trusted={name}).loads(name, data, what="x") == value


def test_pickle_family_is_exactly_the_code_executing_ones() -> None:
    executing = {s.name for s in default_serializers() if s.executes_code}
    assert executing == PICKLE_FAMILY


def test_cloudpickle_output_loads_with_plain_pickle_only_when_trusted() -> None:
    _extra("cloudpickle")
    data = SerializerRegistry().dumps("cloudpickle", [1, 2])
    assert pickle.loads(data) == [1, 2]


def test_unknown_serializer_lists_available() -> None:
    with pytest.raises(SerializationError, match=r"available: .*json.*numpy"):
        SerializerRegistry().get("yaml")


def test_available_names() -> None:
    names = SerializerRegistry().names()
    assert {"json", "numpy", "pickle"} <= set(names)
    for extra in ("safetensors", "dill", "cloudpickle"):
        assert (extra in names) == (importlib.util.find_spec(extra) is not None)
    assert ("torch" in names) == HAS_TORCH
    assert "torch" in SerializerRegistry().names(available_only=False)


def _torch_gap(fn: Callable[[], None]) -> Callable[[], None]:
    if HAS_TORCH:  # pragma: no cover - no small torch wheel in this workspace
        return fn
    mark = pytest.mark.notyet(
        reason="torch is not installed in this workspace (no small wheel)",
        raises=SerializationError,
    )
    decorated: Callable[[], None] = mark(fn)
    return decorated


@_torch_gap
def test_torch_weights_only_roundtrip() -> None:
    reg = SerializerRegistry()
    reg.get("torch")  # SerializationError naming the package when torch is missing
    import torch  # type: ignore[import-not-found,unused-ignore]

    state = {"w": torch.ones(2, 2)}
    out = reg.loads("torch", reg.dumps("torch", state), what="x")
    assert torch.equal(out["w"], state["w"])


def test_torch_serializer_availability_is_reported() -> None:
    reg = SerializerRegistry()
    if HAS_TORCH:  # pragma: no cover
        assert reg.get("torch").name == "torch"
    else:
        with pytest.raises(SerializationError, match="pip install torch"):
            reg.get("torch")


def test_loader_is_loads_checked_once() -> None:
    """loader(name) decodes like loads, wraps errors alike, and refuses untrusted ones at once."""
    reg = SerializerRegistry()
    load = reg.loader("json", what="a value")
    assert load(b'{"a": 1}') == reg.loads("json", b'{"a": 1}', what="a value") == {"a": 1}
    with pytest.raises(SerializationError) as by_loader:
        load(b"{nope")
    with pytest.raises(SerializationError) as by_loads:
        reg.loads("json", b"{nope", what="a value")
    assert str(by_loader.value) == str(by_loads.value)
    with pytest.raises(UntrustedSerializerError):
        reg.loader("pickle", what="a value")
