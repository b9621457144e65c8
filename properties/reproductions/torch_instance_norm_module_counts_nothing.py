"""torch 2.13.0: InstanceNorm*d(track_running_stats=True) never counts num_batches_tracked,
and reads momentum=None as 0.0, so the running statistics stay frozen instead of becoming
the cumulative average (BatchNorm*d does both). Prints DEVIATES and exits 1."""

import sys

import numpy as np
import torch

x = torch.from_numpy(np.random.default_rng(0).normal(2.0, 1.0, size=(2, 3, 5)))
deviates = False
for momentum in (0.1, None):
    layer = torch.nn.InstanceNorm1d(3, track_running_stats=True, momentum=momentum).double()
    for _ in range(3):
        layer(x)
    print(
        f"momentum={momentum}: num_batches_tracked={int(layer.num_batches_tracked)}, "
        f"running_mean={layer.running_mean.tolist()}"
    )
    deviates |= int(layer.num_batches_tracked) != 3
    if momentum is None:
        deviates |= bool(torch.all(layer.running_mean == 0))
if deviates:
    print("DEVIATES")
    sys.exit(1)
