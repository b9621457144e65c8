"""flax 0.12.8 (jax 0.10.2, CPU): BatchNorm(axis_name=...) under jax.pmap combines the replicas'
statistics with lax.pmean of each replica's own (masked) mean of x and x^2: an unweighted
average of the replicas' means. pmap needs equal shares, so a global batch of 7 on two devices
is shares of 4 and 3 padded to 4, the padding masked out with BatchNorm's `mask`; the mean is
then (mean of 4 + mean of 3) / 2, not the mean of the 7, and a replica whose share is wholly
masked out makes every replica NaN (0/0). Upstream: google/flax#2417 (closed; "mean of
per-device mean" for different batch sizes). Prints DEVIATES and exits 1 while it deviates."""

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import flax.linen as nn
import jax
import numpy as np

rng = np.random.default_rng(0)
x = rng.normal(size=(7, 3)).astype(np.float32)  # 7 samples, 3 channels
layer = nn.BatchNorm(axis_name="replicas", use_bias=False, use_scale=False)


def step(share, mask):
    y, _ = layer.apply({}, share, use_running_average=False, mask=mask, mutable=["batch_stats"])
    return y


run = jax.pmap(step, axis_name="replicas", devices=jax.devices()[:2])


def synchronized(sizes, masked_out=()):
    shares = np.split(x, np.cumsum(sizes)[:-1])
    size = max(sizes)
    padded = np.stack([np.pad(s, ((0, size - len(s)), (0, 0))) for s in shares])
    keep = np.stack([np.arange(size) < (0 if r in masked_out else n) for r, n in enumerate(sizes)])
    y = np.asarray(run(padded, keep[:, :, None]))
    return np.concatenate([y[r, : sizes[r]] for r in range(len(sizes))])


x64 = x.astype(np.float64)
exact = (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-5)
uneven = np.abs(synchronized((4, 3)) - exact).max()
print(f"shares 4 + 3 of 7 samples: max error {uneven:.3g} against BatchNorm on the 7")
kept = x64[:4]
exact_kept = (kept - kept.mean(0)) / np.sqrt(kept.var(0) + 1e-5)
masked = synchronized((4, 3), masked_out=(1,))[:4]
print(
    f"replica 1 wholly masked out: {np.isnan(masked).sum()} NaN of {masked.size} outputs "
    f"(max error {np.nanmax(np.abs(masked - exact_kept)) if not np.isnan(masked).all() else 'nan'})"
)
if uneven > 1e-4 or not np.all(np.isfinite(masked)):
    print("DEVIATES")
    sys.exit(1)
