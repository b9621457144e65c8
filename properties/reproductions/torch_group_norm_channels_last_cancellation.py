"""torch 2.13.0 CPU: group_norm on a channels_last input computes its variance in one pass
(E[x^2] - E[x]^2), which cancels catastrophically when the mean is large against the spread;
the contiguous kernel does not. Prints DEVIATES and exits 1 while the deviation lasts."""

import sys

import numpy as np
import torch

F = torch.nn.functional

rng = np.random.default_rng(0)
x = (1000.0 + rng.normal(size=(2, 4, 3, 3))).astype(np.float32)
x64 = x.astype(np.float64).reshape(2, 1, -1)
exact = ((x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)).reshape(
    x.shape
)
errors = {}
for name, fmt in [("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)]:
    y = F.group_norm(torch.from_numpy(x).contiguous(memory_format=fmt), 1, eps=1e-5)
    errors[name] = np.abs(y.double().numpy() - exact).max()
    print(f"float32, offset 1000, {name:13}: max error {errors[name]:.3g}")
if errors["channels_last"] > 100 * errors["contiguous"]:
    print("DEVIATES")
    sys.exit(1)
