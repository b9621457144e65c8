"""torch 2.13.0+cpu: torch.nn.functional.instance_norm (instance_norm train) in float16 leaves
normspec's error bound.

Input: (1, 1, 2) in float16, magnitude 1e+02, severely ill-conditioned (M/sigma >= 1e+06),
sets of 2-15 values, 3-D channels_first. output of step 1 at element (0, 0, 0): observed
nan, exact 0.0 (float64, from the same float16 inputs); the error is infinite the bound
4.885e+04 that a correct kernel (storing float16, accumulating in float32) can reach by
rounding; 2 of 2 elements are outside their bound.

Found by normspec hunt (this campaign): the property
test_running_statistics_follow_the_recurrence on instance_norm, catalogue entry b0516573df.
The input is rebuilt exactly: seeded NumPy; the exact value is the norm's formula in float64
from the values the layer received. Prints both, and exits 1 (DEVIATES) while the
discrepancy stands, 0 once it is fixed. Needs: numpy, torch.
"""

import sys

import numpy as np
import torch

DTYPE = torch.float16


def tensor(a):
    """A NumPy array as a cpu tensor in DTYPE."""
    return torch.from_numpy(np.array(a, order='C')).to(device='cpu', dtype=DTYPE)


def as64(t):
    """A tensor's values in float64 NumPy (exactly)."""
    return t.detach().to('cpu', torch.float64).numpy()


def layout(t):
    """Contiguous memory, as torch makes it."""
    return t


# --- the input, as the layer receives it ---

def recipe(shape, kind="normal", seed=0, offset=0.0, scale=1.0):
    """float64 values from a seeded generator (normspec's ArrayRecipe)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape)
    if kind == "constant":
        return np.full(shape, offset)
    if kind == "mixed":
        z = z * 10.0 ** rng.uniform(-3, 2, shape)
    x = offset + scale * z
    if kind == "constant_samples" and shape:
        constant = rng.random(shape[0]) < 0.5
        x[constant] = offset
    return x


batch_0 = recipe((1, 1, 2), 'large_offset', 1296048960, 100.0, 0.01).astype(np.float16)
initial_mean = recipe((1,), 'normal', 1296048961, 0.0, 1.0).astype(np.float16)
initial_var = (np.abs(recipe((1,), 'normal', 1296048962, 0.0, 1.0)) + 0.5).astype(np.float16)
eps = 1e-12
momentum = 0.1  # normspec's meaning: the weight of the new value (None: the cumulative average)
momentum_weighs = 'new'
estimator = 'unbiased'  # the batch variance the running variance takes

# --- the call, as normspec's 'torch' adapter makes it ---
F, nn = torch.nn.functional, torch.nn
batches = [batch_0]
wt = bt = None  # no affine parameters
rmt, rvt = tensor(initial_mean), tensor(initial_var)
received = {
    'batches': [as64(tensor(b)) for b in batches],
    'initial_mean': as64(rmt),
    'initial_var': as64(rvt),
}  # the values the layer received, in float64
# torch's momentum is the weight of the new batch statistic; None: the cumulative average
momentum_torch = None if momentum is None else (
    momentum if momentum_weighs == 'new' else 1 - momentum
)
with torch.no_grad():  # updates rmt and rvt in place
    outputs = [F.instance_norm(layout(tensor(b)), rmt, rvt, wt, bt, use_input_stats=True, momentum=momentum_torch, eps=eps) for b in batches]
running_mean, running_var = rmt, rvt
observed = as64(outputs[0])

# --- the exact value: the formula in float64, from what the layer received ---
VIEW = (1, 1, 2)  # x viewed so that each pooled set S is a block of AXES
AXES = (2,)
PARAM = (1, 1, 1)  # how weight and bias broadcast against x
OTHER = (0, 2)  # the axes the parameters do not vary along
running_mean, running_var = received['initial_mean'], received['initial_var']
outputs = []
for t, batch in enumerate(received['batches'], start=1):
    view = batch.reshape(VIEW)
    mean = view.mean(axis=AXES, keepdims=True)
    var = ((view - mean) ** 2).mean(axis=AXES, keepdims=True)  # biased
    y = ((view - mean) / np.sqrt(var + eps)).reshape(batch.shape)
    outputs.append(y)
    if momentum is None:  # the cumulative average
        a = 1.0 / t
    else:  # the weight of the new statistic
        a = momentum if momentum_weighs == 'new' else 1.0 - momentum
    bessel = 2 / (2 - 1) if estimator == 'unbiased' else 1.0
    per_channel = lambda stat: stat.reshape(stat.shape[0], -1).mean(axis=0)  # InstanceNorm: the mean over N
    running_mean = (1 - a) * running_mean + a * per_channel(mean)
    running_var = (1 - a) * running_var + a * per_channel(var) * bessel
exact = outputs[0]

# --- the verdict at the worst element, against normspec's bound there ---
INDEX = (0, 0, 0)
BOUND = 48851.99666031786  # the most a correct float16 kernel errs here
LARGEST = 65504.0  # the largest finite float16
with np.errstate(invalid='ignore'):
    error = np.abs(observed - exact)
    wrong = np.count_nonzero(
        ~np.isfinite(observed) & np.isfinite(exact) & (np.abs(exact) < LARGEST)
    )
print(f'output of step 1 at {INDEX}: torch {float(observed[INDEX])!r}, exact {float(exact[INDEX])!r}')
print(f'error {error[INDEX]:.3e} = {error[INDEX] / BOUND:.3g} x the bound {BOUND:.3e}')
print(f'{wrong} of {error.size} elements are NaN or inf where the exact value is a number; the largest finite error is {np.nanmax(np.where(np.isfinite(error), error, np.nan), initial=0.0):.3e}')
if wrong or not error[INDEX] <= BOUND:
    print('DEVIATES')
    sys.exit(1)
print('fixed: within the bound')
