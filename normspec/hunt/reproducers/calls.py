"""What a reproducer replays: one call of a backend, as the culprit event describes it, and
the interface every framework family's template implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

#: The NumPy dtype expression of each dtype that NumPy holds natively.
NATIVE = {"float64": "np.float64", "float32": "np.float32", "float16": "np.float16"}


@dataclass(frozen=True)
class CallSpec:
    """One call of a backend in normspec's vocabulary: method, norm, dtype, the arrays it was
    given (by name: x, weight, bias, running_mean, running_var, grad_y; or batch_0..,
    initial_mean, initial_var, weight, bias), its scalars, and the quantity to compare."""

    backend: str
    method: str
    norm: str
    dtype: str
    shapes: dict[str, tuple[int, ...]]
    scalars: dict
    quantity: str

    @property
    def present(self) -> set[str]:
        return set(self.shapes)

    @property
    def rank(self) -> int:
        return len(self.shapes["x"] if "x" in self.shapes else self.shapes["batch_0"])

    @property
    def evaluation(self) -> bool:
        return self.method != "train" and not self.scalars.get("training", True)

    @property
    def steps(self) -> int:
        return int(self.scalars.get("steps", 0))

    @property
    def eps(self) -> float:
        return float(self.scalars["eps"])


@dataclass
class Code:
    """Lines of a reproducer from one family: imports, helpers, and the call."""

    imports: list[str]
    prelude: list[str] = field(default_factory=list)
    call: list[str] = field(default_factory=list)
    #: what the call is, in words, for the docstring ("torch.nn.functional.layer_norm")
    what: str = ""
    #: the packages the script needs besides NumPy
    needs: tuple[str, ...] = ()


class Family(abc.ABC):
    """A framework family's template: how arrays become its tensors, and the call.

    The call's lines start from NumPy arrays named as in `CallSpec.shapes` (held in
    `host_dtype`), the scalars `eps`, `momentum`, `momentum_weighs`, `estimator`, and end
    with `observed` (the compared quantity, float64, in normspec's (N, C, ...) layout) and
    `received` (float64 copies of what the layer received: the exact value's inputs).
    """

    name = "family"

    def host_dtype(self, dtype: str) -> str:
        """The NumPy dtype the script holds an input of `dtype` in before the call."""
        return NATIVE[dtype]

    def held(self, values: np.ndarray, dtype: str) -> np.ndarray:
        """The values a float64 array holds once the script casts it to the host dtype and
        the framework converts it to `dtype` (to check an inline construction)."""
        if dtype == "bfloat16":
            import ml_dtypes

            return values.astype(ml_dtypes.bfloat16).astype(np.float64)
        return values.astype(dtype).astype(np.float64)

    @abc.abstractmethod
    def code(self, spec: CallSpec) -> Code:
        """The reproducer's lines for the call `spec`: each family writes its own."""
