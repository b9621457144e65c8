"""The vocabulary that the specification, the tolerance model and the backends all speak.

Plain values, no math: the norms' names, a call of a norm (`NormInputs`), k training steps
(`TrainingRun`) and what they give (`TrainingResult`), and gradients (`Gradients`). Every
array is NumPy, in normspec's channels-first layout (N, C, *spatial).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

NORMS: tuple[str, ...] = (
    "batch_norm",
    "layer_norm",
    "instance_norm",
    "group_norm",
    "rms_norm",
    "weight_norm",
)

#: What momentum weighs: the new batch statistic (PyTorch) or the old running value (Keras).
MomentumWeighs = Literal["new", "old"]
#: Which batch variance feeds the running variance.
VarianceEstimator = Literal["unbiased", "biased"]


@dataclass(frozen=True)
class Gradients:
    """The gradients of L = sum(grad_y * norm(x)), each in the dtype of the input x.

    x:      dL/dx, shaped like x (channels-first).
    weight: dL/dweight, shaped like the weight of the call; None when the call has no weight.
    bias:   dL/dbias, shaped like the weight; None without a weight, and for rms_norm.
    For weight_norm, x is dL/dv (shaped like v) and weight is dL/dg (shaped like g).
    """

    x: np.ndarray
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None


@dataclass(frozen=True)
class NormInputs:
    """One call of a norm in normspec's vocabulary.

    For weight_norm, `x` is v and `weight` is g (shaped like v with the reduced axes of size
    1). For batch_norm and instance_norm, `training=False` normalizes with `running_mean` and
    `running_var` instead of the statistics of `x`.
    """

    x: np.ndarray
    eps: float = 0.0
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    num_groups: int | None = None
    normalized_shape: tuple[int, ...] | None = None
    dim: int | None = None
    training: bool = True
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None


@dataclass(frozen=True)
class TrainingRun:
    """k training steps of a layer that tracks running statistics, from given initial values.

    `momentum` is read in the convention `momentum_weighs` names: "new" means
    new = (1 - m) * old + m * batch, "old" means new = m * old + (1 - m) * batch; None means
    the cumulative average over the batches seen. The adapter translates to its framework.
    """

    batches: tuple[np.ndarray, ...]
    eps: float
    momentum: float | None
    momentum_weighs: MomentumWeighs
    running_var_estimator: VarianceEstimator
    initial_mean: np.ndarray
    initial_var: np.ndarray
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None


@dataclass(frozen=True)
class TrainingResult:
    """The output of every step and the running statistics after the last one.

    outputs:      y of each step, shaped like its batch, in the batches' dtype.
    running_mean: (C,), the running mean after the last step, in the batches' dtype.
    running_var:  (C,), the running variance after the last step, in the batches' dtype.
    batches_seen: how many steps the layer counted (PyTorch's num_batches_tracked; an
                  adapter whose framework counts nothing returns len(batches)).
    """

    outputs: tuple[np.ndarray, ...]
    running_mean: np.ndarray
    running_var: np.ndarray
    batches_seen: int


@dataclass(frozen=True)
class ReplicatedRun:
    """k synchronized training steps of BatchNorm on R replicas, each holding a share of the
    global batch, then evaluation mode; the backward pass of the first step.

    shares:   shares[t][r] is replica r's share (n_r, C, *spatial) of step t's global batch;
              every step is split the same way, and there may be no step at all.
    masks:    None, or masks[r], (n_r,) booleans: the samples of replica r that count (Flax's
              `mask`); the others are in the share but take no part in the statistics.
    grad_y:   None, or grad_y[r], the upstream gradient of replica r's output of the first step
              (zero where the mask leaves a sample out, so that the loss is the spec's).
    evaluate: evaluate[r], replica r's input to the layer in evaluation mode after the steps.
    The other fields are TrainingRun's.
    """

    shares: tuple[tuple[np.ndarray, ...], ...]
    eps: float
    momentum: float | None
    momentum_weighs: MomentumWeighs
    running_var_estimator: VarianceEstimator
    initial_mean: np.ndarray
    initial_var: np.ndarray
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    masks: tuple[np.ndarray, ...] | None = None
    grad_y: tuple[np.ndarray, ...] | None = None
    evaluate: tuple[np.ndarray, ...] = ()

    @property
    def replicas(self) -> int:
        """R, the number of replicas."""
        return len(self.shares[0]) if self.shares else len(self.evaluate)


@dataclass(frozen=True)
class ReplicatedResult:
    """What R synchronized replicas give, each array per replica where replicas hold their own.

    outputs:      outputs[t][r], replica r's output of step t, shaped like its share.
    grad_x:       grad_x[r], dL/dx of replica r's share in the first step (None without grad_y).
    grad_weight, grad_bias: dL/dweight and dL/dbias of the first step, summed over replicas as
                  a data-parallel optimizer receives them; None without a weight or grad_y.
    running_mean, running_var: per replica, after the last step.
    evaluation:   evaluation[r], the output of evaluate[r] in evaluation mode.
    """

    outputs: tuple[tuple[np.ndarray, ...], ...]
    running_mean: tuple[np.ndarray, ...]
    running_var: tuple[np.ndarray, ...]
    grad_x: tuple[np.ndarray, ...] | None = None
    grad_weight: np.ndarray | None = None
    grad_bias: np.ndarray | None = None
    evaluation: tuple[np.ndarray, ...] = ()
