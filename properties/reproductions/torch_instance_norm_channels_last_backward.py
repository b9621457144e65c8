"""torch 2.13.0 CPU: the input gradient of instance_norm is wrong when the input and the
output gradient are channels_last and the batch has one sample (float64 too).
Prints DEVIATES and exits 1 while the deviation lasts."""

import sys

import numpy as np
import torch

F = torch.nn.functional

rng = np.random.default_rng(0)
x = torch.from_numpy(rng.normal(size=(1, 2, 3, 2)))
dy = torch.from_numpy(rng.normal(size=(1, 2, 3, 2)))


def input_gradient(memory_format):
    xx = x.contiguous(memory_format=memory_format).requires_grad_()
    y = F.instance_norm(xx, eps=1e-5)
    return torch.autograd.grad(y, xx, dy.contiguous(memory_format=memory_format))[0]


contiguous = input_gradient(torch.contiguous_format)
channels_last = input_gradient(torch.channels_last)
error = (channels_last - contiguous).abs().max().item()
print(f"max |dx(channels_last) - dx(contiguous)| = {error:.3g} (float64)")
print("sum of dx per (n, c), which must be 0:", channels_last.sum(dim=(2, 3)).flatten().tolist())
if error > 1e-12:
    print("DEVIATES")
    sys.exit(1)
