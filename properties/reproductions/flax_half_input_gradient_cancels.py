"""flax 0.12.8 (jax 0.10.2, CPU): the input gradient of a normalization layer on a float16
input is the sum of the cotangents of x's uses (x - mean, and x.astype(float32) in
_compute_stats), each rounded to float16 before they are added: the terms cancel, and dL/dx
loses every digit where it is small against dL/dy / sigma. The same values as float32 give
the right gradient. Prints DEVIATES and exits 1 while the deviation lasts."""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

rng = np.random.default_rng(1)
x = rng.normal(size=(64, 16)).astype(np.float16)
# dL/dy = 1 + 2 x + small: the normalization projects the first two terms out, so the exact
# dL/dx is small while each use of x receives a cotangent of the size of dL/dy / sigma
g = (1 + 2 * x.astype(np.float64) + 1e-2 * rng.normal(size=x.shape)).astype(np.float16)
layer = nn.LayerNorm(use_bias=False, use_scale=False)


def input_gradient(dtype):
    y, pullback = jax.vjp(lambda v: layer.apply({}, v), jnp.asarray(x, dtype))
    return np.asarray(pullback(jnp.asarray(g, y.dtype))[0], dtype=np.float64)


x64, g64 = x.astype(np.float64), g.astype(np.float64)
inv = 1 / np.sqrt(x64.var(-1, keepdims=True) + 1e-6)
x_hat = (x64 - x64.mean(-1, keepdims=True)) * inv
exact = inv * (g64 - g64.mean(-1, keepdims=True) - x_hat * (g64 * x_hat).mean(-1, keepdims=True))
errors = {d: np.abs(input_gradient(d) - exact).max() for d in (jnp.float16, jnp.float32)}
for d, e in errors.items():
    print(f"LayerNorm dL/dx for {np.dtype(d).name} input: max error {e:.3g}")
# float16 can hold dL/dx to about 2^-11 of its size: the float32 result rounded to it would be
if errors[jnp.float16] > 10 * (errors[jnp.float32] + 2.0**-11 * np.abs(exact).max()):
    print("DEVIATES")
    sys.exit(1)
