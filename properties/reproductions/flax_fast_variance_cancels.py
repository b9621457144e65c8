"""flax 0.12.8 (jax 0.10.2, CPU): the normalization layers default to use_fast_variance=True,
var = max(0, E[x^2] - E[x]^2) in one pass, which cancels when the mean is large against the
spread; use_fast_variance=False (the two-pass variance) does not. The error grows with the
square of the conditioning. Prints DEVIATES and exits 1 while the default deviates."""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import flax.linen as nn
import jax
import numpy as np

rng = np.random.default_rng(0)
x = (1000.0 + rng.normal(size=(4, 64))).astype(np.float32)
x64 = x.astype(np.float64)
exact = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-6)
errors = {}
for fast in (True, False):
    layer = nn.LayerNorm(use_fast_variance=fast, use_bias=False, use_scale=False)
    y = np.asarray(layer.apply({}, jax.numpy.asarray(x)), dtype=np.float64)
    errors[fast] = np.abs(y - exact).max()
    print(
        f"float32 LayerNorm, offset 1000, use_fast_variance={fast!s:5}: "
        f"max error {errors[fast]:.3g}"
    )
if errors[True] > 100 * errors[False]:
    print("DEVIATES")
    sys.exit(1)
