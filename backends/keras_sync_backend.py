"""keras-sync: `keras.layers.BatchNormalization(synchronized=True)` under `MirroredStrategy`.

As a Keras user writes data-parallel BatchNorm on TensorFlow: the layer built in
`strategy.scope()`, each replica fed its own share with
`experimental_distribute_values_from_function`, called with `training=True` inside
`strategy.run`, every default as it comes (epsilon 1e-3, momentum 0.99 weighing the old
average, the biased variance in `moving_variance`). Gradients come from a `GradientTape` in
each replica; the parameter gradients are summed with the replica context's `all_reduce`, as
the optimizer's aggregation does. Shares may differ in size; Keras has no mask.

TensorFlow's logical CPU devices (`tf.config.set_logical_device_configuration`) must be set
before TensorFlow initialises its devices, which the `tensorflow` backends in the pytest
process have long done: the engine runs in a worker process (backends/replica_worker.py).
Steps run eagerly, so a new shape, eps or momentum is never a new trace.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from backends.framework import DEFAULT
from backends.protocol import Conventions
from backends.replicated import WorkerBackend
from normspec.vocabulary import ReplicatedResult, ReplicatedRun

DEVICES = 4


class KerasSyncBackend(WorkerBackend):
    """Keras's synchronized BatchNormalization on logical CPU devices, in a worker process."""

    name = "keras-sync"
    dtypes = ("float32", "float64")
    replicas = (2, 3, 4)
    engine = "backends.keras_sync_backend:KerasSyncEngine"
    distributions = (("tensorflow", "tensorflow-cpu"), ("keras", "keras"))
    environment = (("TF_CPP_MIN_LOG_LEVEL", "2"), ("KERAS_BACKEND", "tensorflow"))
    conventions = Conventions(
        default_eps={"batch_norm": 1e-3},
        # moving = moving * momentum + batch * (1 - momentum): BatchNormalization.call
        momentum_weighs="old",
        default_momentum=0.99,
        running_var_estimators=("biased",),
        cumulative_average=False,
        layout="channels_last",
        default_affine=True,
        zero_variance_zero_eps="nan",
        notes={
            "replicas": f"MirroredStrategy over {DEVICES} logical CPU devices, in a worker "
            "process; shares may differ in size",
            "variance": "synchronized=True computes the all-reduced sums of x and x^2 and "
            "var = max(E[x^2] - E[x]^2, 0) (keras/src/backend/tensorflow/nn.py, "
            "_compute_moments_sync), unlike the unsynchronized layer",
        },
    )


class KerasSyncEngine:
    """The worker's side: a MirroredStrategy per replica count and a layer per configuration."""

    def __init__(self) -> None:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(DEVICES)]
        )
        import keras

        # "Using MirroredStrategy eagerly has significant overhead": known, and chosen (above)
        tf.get_logger().setLevel("ERROR")
        self.tf, self.keras = tf, keras
        self._strategy = functools.lru_cache(maxsize=4)(self._build_strategy)
        self._layer = functools.lru_cache(maxsize=32)(self._build_layer)

    def _build_strategy(self, replicas: int) -> Any:
        devices = [f"/cpu:{i}" for i in range(replicas)]
        return self.tf.distribute.MirroredStrategy(
            devices=devices, cross_device_ops=self.tf.distribute.ReductionToOneDevice()
        )

    def _build_layer(self, replicas: int, affine: bool, dtype: str, shape: tuple) -> Any:
        """A built layer and its own defaults (epsilon, momentum), read, not assumed."""
        with self._strategy(replicas).scope():
            layer = self.keras.layers.BatchNormalization(
                synchronized=True, center=affine, scale=affine, dtype=dtype
            )
            layer.build((None, *shape))
        return layer, (layer.epsilon, layer.momentum)

    def ready(self) -> bool:
        """The framework imported and its devices configured."""
        return True

    def step(self, norm: str, run: ReplicatedRun) -> ReplicatedResult:
        """The run's synchronized steps, backward pass and evaluation."""
        tf = self.tf
        first = run.shares[0] if run.shares else run.evaluate
        dtype = first[0].dtype
        replicas = len(first)
        affine = run.weight is not None
        shape = np.moveaxis(first[0], 1, -1).shape[1:]
        strategy = self._strategy(replicas)
        layer, (default_eps, default_momentum) = self._layer(replicas, affine, dtype.name, shape)
        layer.epsilon = default_eps if run.eps is DEFAULT else run.eps
        layer.momentum = default_momentum if run.momentum is DEFAULT else run.momentum
        if affine:
            layer.gamma.assign(np.asarray(run.weight, dtype))
            layer.beta.assign(np.asarray(run.bias, dtype))
        layer.moving_mean.assign(np.asarray(run.initial_mean, dtype))
        layer.moving_variance.assign(np.asarray(run.initial_var, dtype))
        sum_ = tf.distribute.ReduceOp.SUM

        def distributed(arrays):
            tensors = [tf.constant(np.moveaxis(a, 1, -1)) for a in arrays]
            return strategy.experimental_distribute_values_from_function(
                lambda context: tensors[context.replica_id_in_sync_group]
            )

        def train(x):
            return layer(x, training=True)

        def train_with_gradients(x, g):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
            sources = [x, layer.gamma, layer.beta] if affine else [x]
            grads = tape.gradient(y, sources, output_gradients=g)
            if affine:  # what the optimizer receives: the replicas' gradients summed
                grads[1:] = tf.distribute.get_replica_context().all_reduce(sum_, grads[1:])
            return y, grads

        outputs, grads = [], (None, None, None)
        for t, shares in enumerate(run.shares):
            if t == 0 and run.grad_y is not None:
                y, g = strategy.run(
                    train_with_gradients, args=(distributed(shares), distributed(run.grad_y))
                )
                per_replica = [self._local(strategy, v) for v in g]
                grads = (
                    tuple(self._to_first(d, dtype) for d in per_replica[0]),
                    np.asarray(per_replica[1][0], dtype) if affine else None,
                    np.asarray(per_replica[2][0], dtype) if affine else None,
                )
            else:
                y = strategy.run(train, args=(distributed(shares),))
            outputs.append(tuple(self._to_first(v, dtype) for v in self._local(strategy, y)))
        evaluation = ()
        if run.evaluate:
            y = strategy.run(lambda x: layer(x, training=False), args=(distributed(run.evaluate),))
            evaluation = tuple(self._to_first(v, dtype) for v in self._local(strategy, y))
        means = self._local(strategy, layer.moving_mean.value)
        variances = self._local(strategy, layer.moving_variance.value)
        return ReplicatedResult(
            outputs=tuple(outputs),
            running_mean=tuple(np.asarray(m, dtype) for m in means),
            running_var=tuple(np.asarray(v, dtype) for v in variances),
            grad_x=grads[0],
            grad_weight=grads[1],
            grad_bias=grads[2],
            evaluation=evaluation,
        )

    @staticmethod
    def _local(strategy: Any, value: Any) -> list[np.ndarray]:
        """Each replica's copy of a per-replica or mirrored value, as NumPy."""
        return [np.asarray(v) for v in strategy.experimental_local_results(value)]

    @staticmethod
    def _to_first(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(np.asarray(y), -1, 1)).astype(dtype)
