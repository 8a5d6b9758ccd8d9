"""``HashingTextEncoder``: a text embedding in numpy that needs no download (the hashing trick).

Good enough to demonstrate and test similarity search end to end (texts sharing words and word
pieces get similar vectors); replace it with a real embedding model for real use (see the
README: any ``Model`` whose predict method returns one vector per text works).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from attrs import define, field

from pinnacle_protocols.errors import InvalidRecord
from pinnacledb.components.model import Model

__all__ = ["HashingTextEncoder"]

_WORD = re.compile(r"\w+", re.UNICODE)


def _check_dim(_inst: object, _attr: object, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= 65536:
        raise InvalidRecord(f"HashingTextEncoder dim must be an int in [8, 65536], got {value!r}")


@define(kw_only=True)
class HashingTextEncoder(Model):
    """Text to a unit vector of ``dim`` floats: signed hashes of words and character trigrams.

    Deterministic (blake2b, not Python's salted ``hash``), so every process embeds a text the
    same way; pure data (no artifact, nothing to trust on load). Empty text gives the zero
    vector, which a cosine index leaves out.

    Attributes:
        dim: The vector dimension.
        trigrams: Also hash character trigrams of each word (typo- and inflection-tolerant).
    """

    component_name: ClassVar[str | None] = "hashing_text_encoder"

    dim: int = field(default=256, validator=_check_dim)
    trigrams: bool = True
    serializer: str = "json"

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        out = [f"w:{w}" for w in words]
        if self.trigrams:
            for w in words:
                padded = f"<{w}>"
                out += [f"c:{padded[i : i + 3]}" for i in range(len(padded) - 2)]
        return out

    def predict(self, inputs: Sequence[Any]) -> list[Any]:
        """One vector per text: a 1-D float64 numpy array of ``dim`` values, unit length unless
        the text is empty.

        NumPy rows, as embedding libraries return them: a listener with ``output_type="vector"``
        stores the batch as one Arrow column and hands it to a vector index without a Python
        float per value (``.tolist()`` gives plain floats).
        """
        import numpy as np

        rows = []
        for text in inputs:
            vec = np.zeros(self.dim, dtype=np.float64)
            for feature in self._features("" if text is None else str(text)):
                h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
                vec[h % self.dim] += 1.0 if h >> 63 else -1.0
            norm = float(np.linalg.norm(vec))
            rows.append(vec / norm if norm else vec)
        return rows
