"""onnxruntime 1.32.0 (CPU): GroupNormalization-21 has no CPU kernel and runs as its ONNX
function body, whose variance is ReduceMean(X^2) - Mean^2 in one pass: it cancels when the
mean is large against the spread, and, unclamped, goes negative, so Sqrt gives NaN. The
same values through LayerNormalization (one group is a layer norm) are right.
Prints DEVIATES and exits 1 while the deviation lasts."""

import sys

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper


def session(op, inputs, **attributes):
    names = ["X", *inputs]
    graph = helper.make_graph(
        [helper.make_node(op, names, ["Y"], **attributes)],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


rng = np.random.default_rng(0)
x = (1000.0 + rng.normal(size=(2, 1, 64))).astype(np.float32)
x64 = x.astype(np.float64)
exact = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
one = np.ones(1, np.float32)
gn = session("GroupNormalization", ["scale", "bias"], num_groups=1, epsilon=1e-5)
y_gn = gn.run(None, {"X": x, "scale": one, "bias": one * 0})[0]
ln = session("LayerNormalization", ["Scale", "B"], axis=1, epsilon=1e-5)
y_ln = ln.run(
    None, {"X": x, "Scale": np.ones((1, 64), np.float32), "B": np.zeros((1, 64), np.float32)}
)[0]
errors = {
    name: np.abs(y - exact).max()
    for name, y in (("GroupNormalization", y_gn), ("LayerNormalization", y_ln))
}
for name, error in errors.items():
    print(f"float32, offset 1000, spread 1, {name:18}: max error {error:.3g}")
# groups of spread 1e-3 around 100 with eps = 0: E[x^2] - E[x]^2 rounds below zero in some
small = (100.0 + 1e-3 * rng.normal(size=(16, 1, 64))).astype(np.float32)
gn0 = session("GroupNormalization", ["scale", "bias"], num_groups=1, epsilon=0.0)
nan = np.isnan(gn0.run(None, {"X": small, "scale": one, "bias": one * 0})[0]).mean()
print(f"float32, offset 100, spread 0.001, eps 0: {nan:.0%} of GroupNormalization's outputs NaN")
if errors["GroupNormalization"] > 100 * errors["LayerNormalization"] or nan > 0:
    print("DEVIATES")
    sys.exit(1)
