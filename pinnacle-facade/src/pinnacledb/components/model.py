"""Built-in models: a generic ``Model`` around any Python object, and a numpy ``LinearModel``."""

from __future__ import annotations

import keyword
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
from attrs import define, field

from pinnacle_protocols.errors import InvalidRecord, PinnacleError, UntrustedMethodError
from pinnacledb.components._base import Component, artifact

__all__ = ["LinearModel", "Model", "check_method_name"]


def check_method_name(name: object) -> str:
    """``name`` if it is a public method name; dunder and private names are never called.

    Raises:
        InvalidRecord: not an identifier, a keyword, or starts with ``_``.
    """
    if (
        not isinstance(name, str)
        or not name.isidentifier()
        or keyword.iskeyword(name)
        or name.startswith("_")
    ):
        raise InvalidRecord(
            f"predict_method must be the name of a public method (no leading '_', no dunder), "
            f"got {name!r}"
        )
    return name


def _valid_method(_inst: object, _attr: object, value: object) -> None:
    check_method_name(value)


@define(kw_only=True)
class Model(Component):
    """A Python object with a predict method; the object is stored as an artifact.

    **Which method a stored model may call.** ``predict_method`` is read back from the
    metadata store by ``db.load`` / ``db.predict``, so whoever can write that store could
    otherwise make ``db.predict`` call any method of the loaded object (e.g. a numpy array's
    ``tofile(path)``, a file write with no pickle involved). A loaded model is therefore only
    allowed to call:

    * a name its class declares in :attr:`predict_methods` (``{"predict"}`` for ``Model``;
      a subclass declares its own, e.g. ``predict_methods = Model.predict_methods |
      {"embed"}``, and is registered like any component class); or
    * any public name when its ``object`` is loaded with a code-executing serializer
      (``pickle``, ``dill``, ``cloudpickle``) that the Datalayer trusts: trusting it already
      means trusting whoever wrote the record to run code.

    Anything else raises :class:`~pinnacle_protocols.errors.UntrustedMethodError` before an
    artifact is read; ``db.apply`` already refuses a model that no reader could load (an
    undeclared method on an object stored with a data-only serializer). Names starting with
    ``_`` (dunders, private methods) are never called, whatever the trust. A model built in
    code and used directly (``model.predict(...)``) may name any public method.

    Attributes:
        object: The model object (an sklearn estimator, a callable class, ...).
        predict_method: Name of the public method ``db.predict`` calls.
        serializer: How ``object`` is stored (``"pickle"`` by default; loading pickle needs
            ``trust_serializers={"pickle"}``).
        batched: Whether the method takes a list of inputs (True) or one input per call.
    """

    type_id: ClassVar[str] = "model"
    #: Method names a stored record of this class may name without further trust.
    predict_methods: ClassVar[frozenset[str]] = frozenset({"predict"})

    object: Any = artifact(serializer_field="serializer", default=None)  # noqa: RUF009
    predict_method: str = field(default="predict", validator=_valid_method)
    serializer: str = "pickle"
    batched: bool = field(default=True, validator=attrs.validators.instance_of(bool))

    @classmethod
    def verify_record(
        cls, fields: Mapping[str, Any], *, code_artifacts: frozenset[str], shown: str
    ) -> None:
        """Refuse a stored ``predict_method`` the class does not declare (see the class doc).

        Raises:
            UntrustedMethodError: the method is neither declared nor covered by serializer
                trust; the message says how to allow it.
            InvalidRecord: the stored name is private, a dunder or not a name at all.
        """
        method = fields.get("predict_method", "predict")
        try:
            check_method_name(method)
        except InvalidRecord as exc:
            raise InvalidRecord(f"{shown}: {exc}; refusing to load it") from exc
        if method in cls.predict_methods or "object" in code_artifacts:
            return
        declared = ", ".join(repr(m) for m in sorted(cls.predict_methods))
        raise UntrustedMethodError(
            f"{shown}: the stored record names predict_method {method!r}, which "
            f"{cls.__qualname__} does not declare (it declares {declared}); refusing to load a "
            f"model that would call it. To allow it, declare it on a component class: "
            f"`class MyModel({cls.__qualname__}): component_name = 'my_model'; "
            f"predict_methods = {cls.__qualname__}.predict_methods | {{{method!r}}}` "
            f"(registered with db.register_component(MyModel)), or store the object with a "
            f"code-executing serializer you trust (serializer='pickle' and "
            f"trust_serializers={{'pickle'}}), which already trusts whoever writes this store."
        )

    def predict(self, inputs: Sequence[Any]) -> list[Any]:
        """Outputs for a batch of inputs, one per input."""
        if self.object is None:
            raise PinnacleError(f"model {self.identifier!r} has no object to predict with")
        method = getattr(self.object, check_method_name(self.predict_method), None)
        if method is None:
            raise PinnacleError(
                f"model {self.identifier!r}: {type(self.object).__name__} has no method "
                f"{self.predict_method!r}"
            )
        if self.batched:
            return list(method(list(inputs)))
        return [method(x) for x in inputs]


@define(kw_only=True)
class LinearModel(Model):
    """Least-squares linear regression in numpy: ``y = X @ weights + bias``.

    Weights are a numpy artifact (no pickle), so loading it needs no trust.
    """

    component_name: ClassVar[str | None] = "linear_model"

    weights: Any = artifact(serializer="numpy")  # noqa: RUF009 - an attrs field
    bias: float = 0.0
    features: list[str] = field(factory=list)
    ridge: float = 0.0
    serializer: str = "numpy"

    @classmethod
    def fit(
        cls,
        identifier: str,
        X: Any,
        y: Any,
        *,
        features: Sequence[str] = (),
        ridge: float = 0.0,
    ) -> LinearModel:
        """Fit by (ridge) least squares on numpy arrays ``X`` (n, d) and ``y`` (n,)."""
        import numpy as np

        xs = np.asarray(X, dtype=np.float64)
        ys = np.asarray(y, dtype=np.float64)
        design = np.hstack([xs, np.ones((xs.shape[0], 1))])
        if ridge > 0:
            reg = ridge * np.eye(design.shape[1])
            reg[-1, -1] = 0.0  # do not shrink the bias
            coef = np.linalg.solve(design.T @ design + reg, design.T @ ys)
        else:
            coef = np.linalg.lstsq(design, ys, rcond=None)[0]
        return cls(
            identifier=identifier,
            weights=coef[:-1].copy(),
            bias=float(coef[-1]),
            features=list(features),
            ridge=float(ridge),
        )

    def predict(self, inputs: Sequence[Any]) -> list[Any]:
        """Predictions for rows of features (each a sequence of numbers, or one number)."""
        import numpy as np

        xs = np.asarray(list(inputs), dtype=np.float64)
        if xs.ndim == 1:
            xs = xs.reshape(-1, 1)
        out = xs @ np.asarray(self.weights, dtype=np.float64) + self.bias
        return [float(v) for v in out]
