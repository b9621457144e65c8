"""flax 0.12.8 (jax 0.10.2, CPU): WeightNorm of a float16 kernel computes sum(v * v) in
float16 (_l2_normalize has no upcast, unlike the normalization layers' statistics), so the
squared norm overflows once ||v|| exceeds 256 and w = v * rsqrt(inf) * scale is 0, though
every element of w is representable. Prints DEVIATES and exits 1 while the deviation lasts."""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


class Kernel(nn.Module):
    @nn.compact
    def __call__(self):
        return self.param("kernel", nn.initializers.ones, (8,), jnp.float16)


v = np.full(8, 100.0, dtype=np.float16)  # ||v|| = 283, every w_i = 1 / sqrt(8)
layer = nn.WeightNorm(Kernel(), feature_axes=None)
variables = {
    "params": {
        "layer_instance": {"kernel": jnp.asarray(v)},
        "layer_instance/kernel/scale": jnp.ones(()),
    }
}
w = np.asarray(layer.apply(variables), dtype=np.float64)
print(f"float16 WeightNorm of eight 100s: {w[:3]} ..., exact {1 / np.sqrt(8):.6f}")
if not np.allclose(w, 1 / np.sqrt(8), rtol=1e-2):
    print("DEVIATES")
    sys.exit(1)
