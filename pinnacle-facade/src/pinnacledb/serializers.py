"""The serializer registry: how artifact values become bytes and back.

Built in: ``json``, ``numpy`` (``np.save``/``np.load`` with ``allow_pickle=False``), ``pickle``,
and, when their package is installed, ``safetensors``, ``torch`` (weights only: a state dict of
tensors, loaded with ``weights_only=True``), ``dill`` and ``cloudpickle``.

Serializers that run code when loading (the pickle family) are refused unless the Datalayer
trusts them; see :class:`~pinnacle_protocols.errors.UntrustedSerializerError`.
"""

from __future__ import annotations

import importlib.util
import io
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import IO, Any, Final

from attrs import frozen

from pinnacle_protocols.errors import SerializationError, UntrustedSerializerError

__all__ = [
    "PICKLE_FAMILY",
    "Serializer",
    "SerializerRegistry",
    "default_serializers",
    "trust_hint",
]

#: Serializers whose loading can run arbitrary code.
PICKLE_FAMILY: Final = frozenset({"pickle", "dill", "cloudpickle"})


@frozen(kw_only=True)
class Serializer:
    """A named way to turn a value into bytes and back.

    Attributes:
        name: Registry name stored in component records.
        dump: Writes the value to a binary file object.
        load: Reads the value back from the (already hash-verified) bytes.
        executes_code: Whether loading can run arbitrary code (pickle family).
        module: The package it needs, checked with ``importlib.util.find_spec`` (no import).
    """

    name: str
    dump: Callable[[Any, IO[bytes]], None]
    load: Callable[[bytes], Any]
    executes_code: bool = False
    module: str | None = None

    @property
    def available(self) -> bool:
        """Whether the package it needs is installed."""
        return self.module is None or importlib.util.find_spec(self.module) is not None

    def dumps(self, value: Any) -> bytes:
        """Serialize ``value`` to bytes."""
        buf = io.BytesIO()
        self.dump(value, buf)
        return buf.getvalue()


def trust_hint(name: str) -> str:
    """How to trust serializer ``name``, for error messages."""
    return (
        f"Only if you trust everyone who can write to this store, allow it with "
        f"pinnacle(..., trust_serializers={{{name!r}}}), or CFG.trust_serializers = "
        f"{{{name!r}}}, or the environment variable PINNACLEDB_TRUST_SERIALIZERS={name}, or "
        f'trust_serializers = ["{name}"] in pinnacledb.toml.'
    )


# ---------------------------------------------------------------- implementations
def _json_dump(value: Any, fh: IO[bytes]) -> None:
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"json serializer: {exc}") from exc
    fh.write(text.encode("utf-8"))


def _json_load(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


def _numpy_dump(value: Any, fh: IO[bytes]) -> None:
    import numpy as np

    arr = np.asarray(value)
    if arr.dtype.hasobject:
        raise SerializationError(
            "numpy serializer stores numeric/bool/string arrays only (no pickle); this value has "
            "dtype object. Use a numeric array, or the 'pickle' serializer."
        )
    np.save(fh, arr, allow_pickle=False)


#: ``.npy`` header bytes (magic to the end of the padded header) -> (shape, fortran, dtype).
#: Arrays of one column share their header; parsing it (``ast.literal_eval``) costs ~20x the
#: copy of a small array. Bounded: cleared when full.
_NPY_HEADERS: dict[bytes, tuple[tuple[int, ...], bool, Any]] = {}
_NPY_HEADERS_MAX = 256
_NPY_MAGIC = b"\x93NUMPY"


def _npy_data_offset(data: bytes) -> int | None:
    """Where the array data starts in a version 1 or 2 ``.npy`` file, else None."""
    if not data.startswith(_NPY_MAGIC) or len(data) < 12:
        return None
    if data[6] == 1:
        return 10 + int.from_bytes(data[8:10], "little")
    if data[6] == 2:
        return 12 + int.from_bytes(data[8:12], "little")
    return None


def _npy_header(data: bytes, offset: int) -> tuple[tuple[int, ...], bool, Any] | None:
    """The parsed header of ``data`` (cached), or None when ``np.load`` should handle it."""
    key = data[:offset]
    meta = _NPY_HEADERS.get(key)
    if meta is None:
        from numpy.lib import format as npy

        fp = io.BytesIO(key)
        try:
            major, _ = npy.read_magic(fp)
            read = npy.read_array_header_1_0 if major == 1 else npy.read_array_header_2_0
            meta = read(fp)
        except ValueError:
            return None  # np.load raises its own error
        if fp.tell() != offset or meta[2].hasobject:
            return None
        if len(_NPY_HEADERS) >= _NPY_HEADERS_MAX:
            _NPY_HEADERS.clear()
        _NPY_HEADERS[key] = meta
    return meta


def _numpy_load(data: bytes) -> Any:
    """``np.load(allow_pickle=False)`` of ``data``, with the header parsed once per header.

    The array is the same as ``np.load``'s: a writable copy with its own memory, the stored
    dtype, shape and order; anything unusual (another format version, a truncated file, an
    object dtype) goes to ``np.load`` itself, which raises what it raises.
    """
    import numpy as np

    offset = _npy_data_offset(data)
    meta = None if offset is None else _npy_header(data, offset)
    if offset is not None and meta is not None:
        shape, fortran, dtype = meta
        count = 1
        for n in shape:
            count *= n
        if dtype.itemsize and len(data) - offset == count * dtype.itemsize:
            flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset).copy()
            if fortran:
                return flat.reshape(shape[::-1]).transpose()
            return flat.reshape(shape)
    return np.load(io.BytesIO(data), allow_pickle=False)


def _safetensors_dump(value: Any, fh: IO[bytes]) -> None:
    import numpy as np
    from safetensors.numpy import save

    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise SerializationError("safetensors serializer stores a dict of str -> numpy array")
    fh.write(save({k: np.ascontiguousarray(v) for k, v in value.items()}))


def _safetensors_load(data: bytes) -> Any:
    from safetensors.numpy import load

    return load(data)


def _torch_dump(value: Any, fh: IO[bytes]) -> None:
    import torch  # type: ignore[import-not-found,unused-ignore]

    state = value.state_dict() if hasattr(value, "state_dict") else value
    torch.save(state, fh)


def _torch_load(data: bytes) -> Any:
    import torch  # type: ignore[import-not-found,unused-ignore]

    return torch.load(io.BytesIO(data), weights_only=True)


def _pickle_dump(value: Any, fh: IO[bytes]) -> None:
    import pickle

    pickle.dump(value, fh, protocol=5)


def _pickle_load(data: bytes) -> Any:
    import pickle

    return pickle.loads(data)  # noqa: S301 - only reached for trusted serializers


def _dill_dump(value: Any, fh: IO[bytes]) -> None:
    import dill

    dill.dump(value, fh)


def _dill_load(data: bytes) -> Any:
    import dill

    return dill.loads(data)  # noqa: S301 - only reached for trusted serializers


def _cloudpickle_dump(value: Any, fh: IO[bytes]) -> None:
    import cloudpickle

    cloudpickle.dump(value, fh)


def _cloudpickle_load(data: bytes) -> Any:
    import pickle

    return pickle.loads(data)  # noqa: S301 - cloudpickle output loads with pickle; trusted only


def default_serializers() -> list[Serializer]:
    """The built-in serializers (including those whose package is not installed)."""
    return [
        Serializer(name="json", dump=_json_dump, load=_json_load),
        Serializer(name="numpy", dump=_numpy_dump, load=_numpy_load, module="numpy"),
        Serializer(
            name="safetensors", dump=_safetensors_dump, load=_safetensors_load, module="safetensors"
        ),
        Serializer(name="torch", dump=_torch_dump, load=_torch_load, module="torch"),
        Serializer(name="pickle", dump=_pickle_dump, load=_pickle_load, executes_code=True),
        Serializer(
            name="dill", dump=_dill_dump, load=_dill_load, executes_code=True, module="dill"
        ),
        Serializer(
            name="cloudpickle",
            dump=_cloudpickle_dump,
            load=_cloudpickle_load,
            executes_code=True,
            module="cloudpickle",
        ),
    ]


class SerializerRegistry:
    """Serializers by name, with the trust decision for code-executing ones."""

    def __init__(
        self, serializers: Collection[Serializer] | None = None, *, trusted: Collection[str] = ()
    ) -> None:
        """Hold ``serializers`` (default: the built-ins); ``trusted`` names pickle-family ones."""
        self._by_name = {s.name: s for s in (serializers or default_serializers())}
        self.trusted: frozenset[str] = frozenset(trusted)

    def __iter__(self) -> Iterator[Serializer]:
        return iter(self._by_name.values())

    def names(self, *, available_only: bool = True) -> list[str]:
        """Registered names (by default only those whose package is installed)."""
        return sorted(n for n, s in self._by_name.items() if s.available or not available_only)

    def register(self, serializer: Serializer) -> None:
        """Add (or replace) a serializer on this registry only."""
        self._by_name[serializer.name] = serializer

    def get(self, name: str) -> Serializer:
        """The serializer called ``name``.

        Raises:
            SerializationError: unknown name, or its package is not installed.
        """
        ser = self._by_name.get(name)
        if ser is None:
            raise SerializationError(
                f"unknown serializer {name!r}; available: {', '.join(self.names())}"
            )
        if not ser.available:
            raise SerializationError(
                f"serializer {name!r} needs the package {ser.module!r}: pip install {ser.module}"
            )
        return ser

    def check_trusted(self, name: str, what: str) -> None:
        """Refuse ``name`` if it executes code and is not trusted (before any bytes are read).

        Raises:
            UntrustedSerializerError: the message says how to trust it.
        """
        ser = self._by_name.get(name)
        executes = ser.executes_code if ser is not None else name in PICKLE_FAMILY
        if executes and name not in self.trusted:
            raise UntrustedSerializerError(
                f"{what} was saved with the {name!r} serializer, which can run arbitrary code "
                f"when loaded; refusing to load it. {trust_hint(name)}"
            )

    def dumps(self, name: str, value: Any) -> bytes:
        """Serialize with ``name`` (SerializationError chained on failure)."""
        data: bytes = _wrap(self.get(name), "serialize", lambda s: s.dumps(value))
        return data

    def dump(self, name: str, value: Any, fh: IO[bytes]) -> None:
        """Serialize with ``name`` into ``fh``."""
        _wrap(self.get(name), "serialize", lambda s: s.dump(value, fh))

    def loads(self, name: str, data: bytes, *, what: str) -> Any:
        """Deserialize verified bytes with ``name`` after the trust check."""
        self.check_trusted(name, what)
        return _wrap(self.get(name), f"deserialize {what}", lambda s: s.load(data))

    def loader(self, name: str, *, what: str) -> Callable[[bytes], Any]:
        """``lambda data: self.loads(name, data, what=what)`` with the trust check and the
        lookup done once, here (for decoding many values of one column).

        Raises:
            UntrustedSerializerError: as :meth:`check_trusted` (now, not on the first call).
            SerializationError: as :meth:`get`.
        """
        self.check_trusted(name, what)
        ser = self.get(name)
        action = f"deserialize {what}"

        def load(data: bytes) -> Any:
            return _wrap(ser, action, lambda s: s.load(data))

        return load


def _wrap(ser: Serializer, action: str, fn: Callable[[Serializer], Any]) -> Any:
    try:
        return fn(ser)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(
            f"{ser.name} serializer could not {action}: {type(exc).__name__}: {exc}"
        ) from exc
