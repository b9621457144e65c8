"""torch 2.13.0 CPU: a bfloat16 BatchNorm2d step on a channels_last batch updates running_var
with a different (wrong) batch variance than on the same batch in contiguous memory.
Prints DEVIATES and exits 1 while the deviation lasts."""

import sys

import numpy as np
import torch

values = [100.0, 100.0, 100.5, 100.0, 99.5, 100.5]
x = torch.tensor(values, dtype=torch.bfloat16).reshape(1, 2, 3, 1)
x64 = x.double().numpy()
exact = 0.1 * 1.0 + 0.9 * x64.transpose(1, 0, 2, 3).reshape(2, -1).var(axis=1, ddof=1)
results = {}
for name, fmt in [("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)]:
    layer = torch.nn.BatchNorm2d(2, momentum=0.9).to(torch.bfloat16)
    layer(x.contiguous(memory_format=fmt))
    results[name] = layer.running_var.double().numpy()
    print(f"{name:13} running_var {results[name]}")
print(f"exact         running_var {exact}")
error = np.abs(results["channels_last"] - exact).max()
if error > 10 * np.abs(results["contiguous"] - exact).max() and error > 0.01:
    print("DEVIATES")
    sys.exit(1)
