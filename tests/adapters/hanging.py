"""A backend that never returns on one norm and is correct on every other."""

from __future__ import annotations

from backends.numpy_backend import NumpyBackend


class HangsOnLayerNorm(NumpyBackend):
    """Spins forever on any layer_norm call, holding the GIL, as a deadlocked kernel does."""

    def forward(self, norm, inputs):
        while norm == "layer_norm":
            pass
        return super().forward(norm, inputs)
