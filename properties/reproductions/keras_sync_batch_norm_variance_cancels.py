"""Keras 3.15.1 (TensorFlow 2.21, CPU): BatchNormalization(synchronized=True) under a
MirroredStrategy computes its variance in one pass, max(E[x^2] - E[x]^2, 0) from the
all-reduced sums of x and x^2 (keras/src/backend/tensorflow/nn.py, _compute_moments_sync),
which cancels when the mean is large against the spread; the same layer with
synchronized=False (tf.nn.moments, two passes) does not. Upstream: not found (the synchronized
path came with keras-team/keras#18671). Prints DEVIATES and exits 1 while it deviates."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
# Keras after the logical devices: TensorFlow must not have initialised its devices yet
import keras  # noqa: E402
import numpy as np  # noqa: E402

rng = np.random.default_rng(0)
x = (1000.0 + rng.normal(size=(8, 4))).astype(np.float32)  # 8 samples, 4 channels
x64 = x.astype(np.float64)
exact = (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-3)

strategy = tf.distribute.MirroredStrategy(
    devices=["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
)


def output(synchronized: bool) -> np.ndarray:
    """The layer's training-mode output on x: two replicas of 4 samples, or one batch."""
    with strategy.scope():
        layer = keras.layers.BatchNormalization(synchronized=synchronized)
        layer.build((None, 4))
    if synchronized:
        shares = [tf.constant(x[:4]), tf.constant(x[4:])]
        values = strategy.experimental_distribute_values_from_function(
            lambda context: shares[context.replica_id_in_sync_group]
        )
        y = strategy.run(lambda s: layer(s, training=True), args=(values,))
        return np.concatenate([np.asarray(v) for v in strategy.experimental_local_results(y)])
    return np.asarray(layer(tf.constant(x), training=True))


errors = {}
for synchronized in (True, False):
    errors[synchronized] = np.abs(output(synchronized).astype(np.float64) - exact).max()
    print(
        f"float32, offset 1000, synchronized={synchronized!s:5}: "
        f"max error {errors[synchronized]:.3g}"
    )
if errors[True] > 100 * errors[False]:
    print("DEVIATES")
    sys.exit(1)
