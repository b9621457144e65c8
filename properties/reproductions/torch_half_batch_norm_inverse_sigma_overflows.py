"""torch 2.13.0 CPU: training-mode batch_norm (and instance_norm, which calls it) of a float16
input holds 1/sigma = 1/sqrt(var + eps) in float16. A channel whose spread is below about
1.5e-5, with an eps below 2.3e-10, has 1/sigma > 65504: inf, and the output is inf or NaN
where the exact one is of order 1. With two values one float16 ulp apart at 0.01
(sigma = 3.8e-6) and eps = 1e-12 the output is NaN; the exact is +-0.97. layer_norm of the same
float16 values (it keeps 1/sigma in float32) gives +-0.9673; float32 batch_norm is finite. Prints
DEVIATES and exits 1 while it lasts, 0 once it is fixed."""

import sys

import numpy as np
import torch

x = torch.tensor([[0.01], [0.01]], dtype=torch.float16)
x[1] = torch.nextafter(x[1], torch.tensor(1.0, dtype=torch.float16))
v = x.double().numpy()
eps = 1e-12
exact = (v - v.mean(axis=0)) / np.sqrt(v.var(axis=0) + eps)  # biased variance, as normalized
y = torch.nn.functional.batch_norm(x, None, None, training=True, eps=eps)
print(f"y = {y.ravel().tolist()}, exact {exact.ravel().tolist()}")
if not np.allclose(y.double().numpy(), exact, rtol=1e-2, atol=0):
    print("DEVIATES")
    sys.exit(1)
print("fixed: within 1 %")
