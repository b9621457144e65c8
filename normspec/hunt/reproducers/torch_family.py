"""The reproducer template of the PyTorch backends: `torch` (torch.nn.functional), `torch-nn`
(the modules), `torch-channels-last` (the modules on channels_last memory), `torch-cuda`.

Each call is written as backends/torch_backend.py makes it, with nothing of normspec left:
the same functional op or module, the same dtype for the parameters and running statistics
(the input's), the same memory format, momentum in torch's meaning (the weight of the new
batch statistic), gradients by torch.autograd with grad_y as the output gradient.
"""

from __future__ import annotations

import numpy as np

from normspec.hunt.reproducers.calls import CallSpec, Code, Family

_BATCH_NORM = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}
_INSTANCE_NORM = {3: "InstanceNorm1d", 4: "InstanceNorm2d", 5: "InstanceNorm3d"}


class TorchFamily(Family):
    """torch's functional ops and modules."""

    name = "torch"

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.modules = backend != "torch"
        self.channels_last = backend == "torch-channels-last"
        self.device = "cuda" if backend == "torch-cuda" else "cpu"

    def host_dtype(self, dtype: str) -> str:
        # torch cannot read NumPy's bfloat16 (ml_dtypes): the script holds it in float32 and
        # torch rounds it to bfloat16, to nearest even, as ml_dtypes does
        return "np.float32" if dtype == "bfloat16" else super().host_dtype(dtype)

    def held(self, values: np.ndarray, dtype: str) -> np.ndarray:
        if dtype == "bfloat16":
            return super().held(values.astype(np.float32).astype(np.float64), dtype)
        return super().held(values, dtype)

    def code(self, spec: CallSpec) -> Code:
        prelude = [
            f"DTYPE = torch.{spec.dtype}",
            "",
            "",
            "def tensor(a):",
            f'    """A NumPy array as a {self.device} tensor in DTYPE."""',
            "    return torch.from_numpy(np.array(a, order='C')).to(device="
            f"'{self.device}', dtype=DTYPE)",
            "",
            "",
            "def as64(t):",
            '    """A tensor\'s values in float64 NumPy (exactly)."""',
            "    return t.detach().to('cpu', torch.float64).numpy()",
            "",
            "",
            "def layout(t):",
        ]
        if self.channels_last:
            prelude += [
                '    """The memory format the layer sees: channels_last for 4-D, 3-D for 5-D."""',
                "    if t.ndim == 4:",
                "        return t.contiguous(memory_format=torch.channels_last)",
                "    if t.ndim == 5:",
                "        return t.contiguous(memory_format=torch.channels_last_3d)",
                "    return t",
            ]
        else:
            prelude += ['    """Contiguous memory, as torch makes it."""', "    return t"]
        call = self._train(spec) if spec.method == "train" else self._call(spec)
        return Code(
            imports=["import torch"],
            prelude=prelude,
            call=call,
            what=self._what(spec),
            needs=("torch",),
        )

    # --- the pieces ------------------------------------------------------------------------

    def _what(self, spec: CallSpec) -> str:
        if spec.norm == "weight_norm":
            return (
                "torch.nn.utils.parametrizations.weight_norm"
                if self.modules
                else "torch._weight_norm"
            )
        if not self.modules:
            return f"torch.nn.functional.{spec.norm}"
        return f"torch.nn.{self._module_name(spec)}" + (
            " on channels_last memory" if self.channels_last and spec.rank in (4, 5) else ""
        )

    def _module_name(self, spec: CallSpec) -> str:
        return {
            "batch_norm": _BATCH_NORM.get(spec.rank, "BatchNorm1d"),
            "instance_norm": _INSTANCE_NORM.get(spec.rank, "InstanceNorm1d"),
            "layer_norm": "LayerNorm",
            "group_norm": "GroupNorm",
            "rms_norm": "RMSNorm",
            "weight_norm": "utils.parametrizations.weight_norm",
        }[spec.norm]

    def _parameters(self, spec: CallSpec) -> list[str]:
        """wt and bt as torch's adapter makes them: a missing one of a pair is 1 or 0."""
        present = spec.present
        if "weight" not in present and "bias" not in present:
            return ["wt = bt = None  # no affine parameters"]
        lines = [
            "wt = tensor(weight)" if "weight" in present else "wt = torch.ones_like(tensor(bias))"
        ]
        if spec.norm in ("rms_norm", "weight_norm"):
            lines.append("bt = None")
        else:
            lines.append("bt = tensor(bias)" if "bias" in present else "bt = torch.zeros_like(wt)")
        return lines

    def _received(self, spec: CallSpec, names: list[str]) -> list[str]:
        items = ", ".join(f"'{n}': as64(tensor({n}))" for n in names if n in spec.present)
        return [f"received = {{{items}}}  # the values the layer received, in float64"]

    def _functional(self, spec: CallSpec) -> str:
        norm, s = spec.norm, spec.scalars
        running = "rmt, rvt" if spec.evaluation else "None, None"
        if norm == "batch_norm":
            return f"F.batch_norm(xt, {running}, wt, bt, training={not spec.evaluation}, eps=eps)"
        if norm == "instance_norm":
            return (
                f"F.instance_norm(xt, {running}, wt, bt, "
                f"use_input_stats={not spec.evaluation}, eps=eps)"
            )
        if norm == "layer_norm":
            return f"F.layer_norm(xt, {tuple(s['normalized_shape'])}, wt, bt, eps=eps)"
        if norm == "group_norm":
            return f"F.group_norm(xt, {s['num_groups']}, wt, bt, eps=eps)"
        if norm == "rms_norm":
            return f"F.rms_norm(xt, {tuple(s['normalized_shape'])}, wt, eps=eps)"
        return f"torch._weight_norm(xt, wt, {_torch_dim(s.get('dim'), spec.rank)})"

    def _module(self, spec: CallSpec, *, training_run: bool = False) -> list[str]:
        """`layer`: the module of this call, in DTYPE, loaded with the call's state."""
        norm, s = spec.norm, spec.scalars
        affine = "weight" in spec.present or "bias" in spec.present
        channels = (spec.shapes.get("x") or spec.shapes["batch_0"])[1] if norm != "rms_norm" else 0
        options = "eps=eps" + (", momentum=momentum_torch" if training_run else "")
        if norm == "batch_norm":
            build = f"nn.{self._module_name(spec)}({channels}, affine={affine}, {options})"
        elif norm == "instance_norm":
            track = training_run or spec.evaluation
            build = (
                f"nn.{self._module_name(spec)}({channels}, affine={affine}, "
                f"track_running_stats={track}, {options})"
            )
        elif norm == "layer_norm":
            build = (
                f"nn.LayerNorm({tuple(s['normalized_shape'])}, elementwise_affine={affine}, "
                f"bias={affine}, eps=eps)"
            )
        elif norm == "group_norm":
            build = f"nn.GroupNorm({s['num_groups']}, {channels}, affine={affine}, eps=eps)"
        else:
            build = (
                f"nn.RMSNorm({tuple(s['normalized_shape'])}, elementwise_affine={affine}, eps=eps)"
            )
        lines = [f"layer = {build}.to(device='{self.device}', dtype=DTYPE)"]
        body = []
        if affine:
            body.append("layer.weight.copy_(wt)")
            if norm != "rms_norm":
                body.append("layer.bias.copy_(bt)")
        if spec.evaluation or training_run:
            body += [
                "layer.running_mean.copy_(rmt)",
                "layer.running_var.copy_(rvt)",
                "layer.num_batches_tracked.zero_()",
            ]
        if body:
            lines.append("with torch.no_grad():  # the call's parameters and running statistics")
            lines += [f"    {b}" for b in body]
        lines.append(f"layer.train({not spec.evaluation})")
        return lines

    def _weight_norm_module(self, spec: CallSpec) -> list[str]:
        dim = _torch_dim(spec.scalars.get("dim"), spec.rank)
        return [
            "holder = nn.Module()",
            "holder.weight = nn.Parameter(layout(torch.ones(xt.shape, dtype=DTYPE)))",
            f"holder = nn.utils.parametrizations.weight_norm(holder, 'weight', dim={dim})",
            "param = holder.parametrizations.weight",
            "with torch.no_grad():  # g, then v",
            "    param.original0.copy_(wt.reshape(param.original0.shape))",
            "    param.original1.copy_(xt)",
        ]

    def _call(self, spec: CallSpec) -> list[str]:
        lines = ["F, nn = torch.nn.functional, torch.nn", "xt = layout(tensor(x))"]
        lines += self._parameters(spec)
        if spec.evaluation:
            lines.append("rmt, rvt = tensor(running_mean), tensor(running_var)")
        names = ["x", "weight", "bias", "running_mean", "running_var", "grad_y"]
        lines += self._received(spec, names)
        differentiate = spec.method == "vjp"
        with_params = "weight" in spec.present
        if self.modules and spec.norm == "weight_norm":
            lines += self._weight_norm_module(spec)
            output = "holder.weight"
            sources = ["param.original1", "param.original0"]
        elif self.modules:
            lines += self._module(spec)
            output = "layer(xt)"
            sources = ["xt", "layer.weight"] + (["layer.bias"] if spec.norm != "rms_norm" else [])
        else:
            output = self._functional(spec)
            sources = ["xt", "wt"] + ([] if spec.norm in ("rms_norm", "weight_norm") else ["bt"])
            if differentiate and with_params:
                lines.append("wt.requires_grad_()")
                if len(sources) == 3:
                    lines.append("bt.requires_grad_()")
        if not differentiate:
            lines += ["with torch.no_grad():", f"    y = {output}", "observed = as64(y)"]
            return lines
        if not with_params:
            sources = sources[:1]
        if sources[0] == "xt":
            lines.append("xt.requires_grad_()")
        lines += [
            f"y = {output}",
            f"grads = torch.autograd.grad(y, [{', '.join(sources)}], "
            "grad_outputs=layout(tensor(grad_y)))",
        ]
        index = {"dL/dx": 0, "dL/dweight": 1, "dL/dbias": 2}[spec.quantity]
        shape = spec.shapes["x"] if index == 0 else spec.shapes["weight"]
        lines.append(f"observed = as64(grads[{index}]).reshape({shape})")
        return lines

    def _train(self, spec: CallSpec) -> list[str]:
        lines = [
            "F, nn = torch.nn.functional, torch.nn",
            "batches = [" + ", ".join(f"batch_{k}" for k in range(spec.steps)) + "]",
        ]
        lines += self._parameters(spec)
        lines += [
            "rmt, rvt = tensor(initial_mean), tensor(initial_var)",
            "received = {",
            "    'batches': [as64(tensor(b)) for b in batches],",
            "    'initial_mean': as64(rmt),",
            "    'initial_var': as64(rvt),",
        ]
        lines += [
            f"    '{n}': as64({t}),"
            for n, t in (("weight", "wt"), ("bias", "bt"))
            if n in spec.present
        ]
        lines += [
            "}  # the values the layer received, in float64",
            "# torch's momentum is the weight of the new batch statistic; None: the cumulative "
            "average",
            "momentum_torch = None if momentum is None else (",
            "    momentum if momentum_weighs == 'new' else 1 - momentum",
            ")",
        ]
        if self.modules:
            lines += self._module(spec, training_run=True)
            lines += [
                "with torch.no_grad():",
                "    outputs = [layer(layout(tensor(b))) for b in batches]",
                "running_mean, running_var = layer.running_mean, layer.running_var",
            ]
        else:
            op = (
                "F.batch_norm(layout(tensor(b)), rmt, rvt, wt, bt, training=True, "
                "momentum=momentum_torch, eps=eps)"
                if spec.norm == "batch_norm"
                else "F.instance_norm(layout(tensor(b)), rmt, rvt, wt, bt, use_input_stats=True, "
                "momentum=momentum_torch, eps=eps)"
            )
            lines += [
                "with torch.no_grad():  # updates rmt and rvt in place",
                f"    outputs = [{op} for b in batches]",
                "running_mean, running_var = rmt, rvt",
            ]
        lines.append(_train_observed(spec.quantity))
        return lines


def _train_observed(quantity: str) -> str:
    if quantity in ("running_mean", "running_var"):
        return f"observed = as64({quantity})"
    step = int(quantity.rsplit(" ", 1)[1])
    return f"observed = as64(outputs[{step - 1}])"


def _torch_dim(dim: int | None, ndim: int) -> int:
    """weight_norm's dim for torch: -1 means the whole tensor."""
    return -1 if dim is None else dim % ndim
