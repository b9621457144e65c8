"""torch 2.13.0 CPU: weight_norm in float16 holds ||v|| in float16, so w = g v / ||v|| becomes
0 once ||v|| exceeds 65504, although every element of w is representable (and loses
precision once g / ||v|| is subnormal). Prints DEVIATES and exits 1 while it lasts."""

import sys

import numpy as np
import torch

v = torch.full((108,), 6400.0, dtype=torch.float16)  # ||v|| = 66510 > 65504
g = torch.tensor(1.0, dtype=torch.float16)
w = torch._weight_norm(v, g, -1)
exact = 1.0 / np.sqrt(108.0)
print(f"w[0] = {w[0].item()}, exact {exact:.6f}, ||v|| in float16: {v.norm().item()}")
if abs(w[0].item() - exact) > 1e-3:
    print("DEVIATES")
    sys.exit(1)
