"""torch 2.13.0+cpu: float32 layer_norm and group_norm lose a small variance under a large mean.

Found by `normspec hunt` (catalogue entries a4f40693f9 and 7061616e03, property
test_forward_agrees_with_the_spec_on_ill_conditioned_input): for a set of float32 values near
1e5 whose spread is one ulp (variance 1.5e-5 for two values 0.0078 apart), the CPU kernels'
statistics give a variance of 0, and with eps = 0 the output is inf and NaN where the exact
one is +-1 (and 1.41, 0.71, 0.71 for GroupNorm of three values). A two-pass variance in
float32 is exact here. Upstream: related, pytorch/pytorch#51102 (LayerNorm of mean-shifted
rows, closed) and #40302 (CPU LayerNorm variance of 0 at mean 100, addressed by #40307); this
case not found.

Prints both and exits 1 (DEVIATES) while the discrepancy stands, 0 once it is fixed. Needs:
numpy, torch.
"""

import sys

import numpy as np
import torch

F = torch.nn.functional


def exact(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) over `axes`, in float64 from the float32 values."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x64 - mean) / np.sqrt(var + eps)


calls = {
    "layer_norm": (
        np.array([99999.99, 99999.984], dtype=np.float32),
        lambda t: F.layer_norm(t, (2,), eps=0.0),
        (0,),
    ),
    "group_norm": (
        np.array([[100000.01, 100000.0, 100000.0]], dtype=np.float32),
        lambda t: F.group_norm(t, 1, eps=0.0),
        (1,),
    ),
}
deviates = False
for name, (x, call, axes) in calls.items():
    with torch.no_grad():
        observed = call(torch.from_numpy(x)).numpy().astype(np.float64)
    expected = exact(x, axes, 0.0)
    print(f"{name}: torch {observed.ravel()}, exact {expected.ravel()}")
    deviates |= bool(np.any(~np.isfinite(observed)) or np.abs(observed - expected).max() > 1e-3)
if deviates:
    print("DEVIATES")
    sys.exit(1)
print("fixed: the outputs are the exact ones")
