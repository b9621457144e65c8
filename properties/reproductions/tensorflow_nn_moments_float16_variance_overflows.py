"""tensorflow 2.21.0 CPU: tf.nn.moments of float16 computes in float32 but returns the
variance rounded to float16, which is inf once the variance exceeds 65504 (a spread above
256), though the normalized output is of order 1: tf.nn.batch_normalization then returns the
offset for every element.
Prints DEVIATES and exits 1 while the deviation lasts."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

x = tf.constant(np.array([0.0049, -49.25, 750.5], dtype=np.float16))
mean, variance = tf.nn.moments(x, [0], keepdims=True)
y = tf.nn.batch_normalization(x, mean, variance, None, None, 0.0).numpy()
x64 = x.numpy().astype(np.float64)
exact = (x64 - x64.mean()) / x64.std()
print(f"tensorflow variance {variance.numpy()}, y {y}")
print(f"exact      variance {x64.var():.6g}, y {exact}")
if not np.all(np.abs(y.astype(np.float64) - exact) < 0.01):
    print("DEVIATES")
    sys.exit(1)
