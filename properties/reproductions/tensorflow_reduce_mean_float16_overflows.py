"""tensorflow 2.21.0 CPU: tf.reduce_mean of float16 returns inf when the sum exceeds 65504,
though the mean is representable: the sum is rounded to float16 before the division (NumPy's
mean of float16 divides in float32 and returns 1e4). An RMSNorm written with it,
x * rsqrt(reduce_mean(x^2) + eps), returns 0 for a row of 100s.
Prints DEVIATES and exits 1 while the deviation lasts."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

x = np.full(8, 1e4, dtype=np.float16)
mean = float(tf.reduce_mean(tf.constant(x)))
print(f"tensorflow reduce_mean {mean}")
print(f"exact      mean        {x.astype(np.float64).mean()}")
if not np.isfinite(mean):
    print("DEVIATES")
    sys.exit(1)
