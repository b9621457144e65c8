"""tensorflow 2.21.0 CPU: the gradient of tf.nn.moments + tf.nn.batch_normalization in float16
goes through d rsqrt(v) / dv = -v^-1.5 / 2 computed in float16, which overflows to inf once
var + eps < 6e-4 (a spread below 0.025, or a constant slice with eps = 1e-5): the input
gradient is inf or NaN where the exact one is about 24.
Prints DEVIATES and exits 1 while the deviation lasts."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

eps = 1e-5
x = tf.constant(np.array([0.001965, -0.002064], dtype=np.float16))
grad_y = tf.constant(np.array([0.1257, -0.1321], dtype=np.float16))
with tf.GradientTape() as tape:
    tape.watch(x)
    mean, variance = tf.nn.moments(x, [0], keepdims=True)
    y = tf.nn.batch_normalization(x, mean, variance, None, None, eps)
dx = tape.gradient(y, x, output_gradients=grad_y).numpy()

x64, g64 = x.numpy().astype(np.float64), grad_y.numpy().astype(np.float64)
sigma = np.sqrt(x64.var() + eps)
x_hat = (x64 - x64.mean()) / sigma
exact = (g64 - g64.mean() - x_hat * np.mean(g64 * x_hat)) / sigma
print(f"tensorflow dL/dx {dx}")
print(f"exact      dL/dx {exact}")
if not np.all(np.isfinite(dx)):
    print("DEVIATES")
    sys.exit(1)
