"""Built-in models: a generic ``Model`` around any Python object, and a numpy ``LinearModel``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from attrs import define, field

from pinnacle_protocols.errors import PinnacleError
from pinnacledb.components._base import Component, artifact

__all__ = ["LinearModel", "Model"]


@define(kw_only=True)
class Model(Component):
    """A Python object with a predict method; the object is stored as an artifact.

    Attributes:
        object: The model object (an sklearn estimator, a callable class, ...).
        predict_method: Name of the method ``db.predict`` calls.
        serializer: How ``object`` is stored (``"pickle"`` by default; loading pickle needs
            ``trust_serializers={"pickle"}``).
        batched: Whether the method takes a list of inputs (True) or one input per call.
    """

    type_id: ClassVar[str] = "model"

    object: Any = artifact(serializer_field="serializer", default=None)  # noqa: RUF009
    predict_method: str = "predict"
    serializer: str = "pickle"
    batched: bool = True

    def predict(self, inputs: Sequence[Any]) -> list[Any]:
        """Outputs for a batch of inputs, one per input."""
        if self.object is None:
            raise PinnacleError(f"model {self.identifier!r} has no object to predict with")
        method = getattr(self.object, self.predict_method, None)
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
