"""tensorflow 2.21.0 CPU: tf.nn.batch_normalization computes y = x * inv + (offset - mean * inv)
with inv = scale / sqrt(var + eps), in the input dtype. In float16, x * inv overflows to inf as
soon as |x| * scale / sqrt(var + eps) > 65504, though y itself is small, and inf - inf is NaN.
Here the slice is constant, so the exact y is the offset.
Prints DEVIATES and exits 1 while the deviation lasts."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

x = tf.constant(np.full(3, 100.0, dtype=np.float16))
mean, variance = tf.nn.moments(x, [0], keepdims=True)
offset, scale = np.float16(0.5), np.float16(2.125)
y = tf.nn.batch_normalization(x, mean, variance, offset, scale, 1e-5).numpy()
print(f"tensorflow y {y}")
print(f"exact      y {np.full(3, 0.5)}")
if not np.all(np.isfinite(y)):
    print("DEVIATES")
    sys.exit(1)
