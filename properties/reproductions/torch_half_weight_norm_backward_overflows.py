"""torch 2.13.0 CPU: the backward of weight_norm in float16 returns an infinite dL/dv once
||v|| is small (here a single element v = 0.002808, ||v||^2 = 7.9e-6 is subnormal and ||v||^3
underflows to 0 in float16), where the exact gradient is 0 (w = g v / ||v|| does not depend on
a one-element v's magnitude). float32 gives 0. Prints DEVIATES and exits 1 while it lasts."""

import sys

import numpy as np
import torch

v = torch.tensor([0.002808], dtype=torch.float16, requires_grad=True)
g = torch.tensor([2.041], dtype=torch.float16)
w = torch._weight_norm(v, g, -1)
w.backward(torch.tensor([1.0], dtype=torch.float16))
grad = v.grad.float().numpy()
# exact: dL/dv = (g / ||v||) (grad_w - u * sum(grad_w * u)), u = v / ||v|| = 1: zero
exact = np.zeros(1)
print(f"dL/dv = {grad}, exact {exact}")
if not np.all(np.isfinite(grad)) or np.max(np.abs(grad - exact)) > 1e-3:
    print("DEVIATES")
    sys.exit(1)
