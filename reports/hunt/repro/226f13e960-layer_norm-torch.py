"""torch 2.13.0+cpu: torch.nn.functional.layer_norm (layer_norm forward) in float32 leaves
normspec's error bound.

Input: (2,) in float32, magnitude 1e+04, severely ill-conditioned (M/sigma >= 1e+06), sets
of 2-15 values, 1-D channels_first. y at element (0,): observed inf, exact 1.0 (float64,
from the same float32 inputs); the error is infinite the bound 2.291e+01 that a correct
kernel (storing float32, accumulating in float32) can reach by rounding; 2 of 2 elements are
outside their bound.

Found by normspec hunt (this campaign): the property
test_output_is_invariant_to_positive_scaling on layer_norm, catalogue entry 226f13e960. The
input is rebuilt exactly: seeded NumPy; the exact value is the norm's formula in float64
from the values the layer received. Prints both, and exits 1 (DEVIATES) while the
discrepancy stands, 0 once it is fixed. Needs: numpy, torch.
"""

import sys

import numpy as np
import torch

DTYPE = torch.float32


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


x = recipe((2,), 'large_offset', 3989054842, 10000.0, 0.01).astype(np.float32)
eps = 0.0

# --- the call, as normspec's 'torch' adapter makes it ---
F, nn = torch.nn.functional, torch.nn
xt = layout(tensor(x))
wt = bt = None  # no affine parameters
received = {'x': as64(tensor(x))}  # the values the layer received, in float64
with torch.no_grad():
    y = F.layer_norm(xt, (2,), wt, bt, eps=eps)
observed = as64(y)

# --- the exact value: the formula in float64, from what the layer received ---
VIEW = (2,)  # x viewed so that each pooled set S is a block of AXES
AXES = (0,)
PARAM = (2,)  # how weight and bias broadcast against x
OTHER = ()  # the axes the parameters do not vary along
x64 = received['x']
view = x64.reshape(VIEW)
mean = view.mean(axis=AXES, keepdims=True)
var = ((view - mean) ** 2).mean(axis=AXES, keepdims=True)  # biased
x_hat = ((view - mean) / np.sqrt(var + eps)).reshape(x64.shape)
exact = x_hat

# --- the verdict at the worst element, against normspec's bound there ---
INDEX = (0,)
BOUND = 22.907281489728422  # the most a correct float32 kernel errs here
LARGEST = 3.4028234663852886e+38  # the largest finite float32
with np.errstate(invalid='ignore'):
    error = np.abs(observed - exact)
    wrong = np.count_nonzero(
        ~np.isfinite(observed) & np.isfinite(exact) & (np.abs(exact) < LARGEST)
    )
print(f'y at {INDEX}: torch {float(observed[INDEX])!r}, exact {float(exact[INDEX])!r}')
print(f'error {error[INDEX]:.3e} = {error[INDEX] / BOUND:.3g} x the bound {BOUND:.3e}')
print(f'{wrong} of {error.size} elements are NaN or inf where the exact value is a number; the largest finite error is {np.nanmax(np.where(np.isfinite(error), error, np.nan), initial=0.0):.3e}')
if wrong or not error[INDEX] <= BOUND:
    print('DEVIATES')
    sys.exit(1)
print('fixed: within the bound')
