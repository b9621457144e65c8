"""The reproducer template of an adapter that is its own framework: the NumPy backend, the
honest controls, and external adapters (`module:attr`, the planted bugs of tests/mutants).

Their kernels are the adapter's own code, so the script imports the adapter and calls it
through the adapter protocol (`backends.protocol`: NormInputs, TrainingRun), exactly as
normspec does; the exact value is still written out in NumPy. Run it from the directory the
adapter imports from (the repository root for the built-in ones and tests/mutants).
"""

from __future__ import annotations

from normspec.hunt.reproducers.calls import CallSpec, Code, Family


def adapter_target(backend: str) -> str:
    """`module:attr` of a backend name (a built-in one, or an external adapter's own)."""
    from backends.registry import BUILTIN, CONTROLS

    return BUILTIN.get(backend) or CONTROLS.get(backend) or backend


class AdapterFamily(Family):
    """An adapter called through the protocol."""

    name = "adapter"

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def host_dtype(self, dtype: str) -> str:
        return "ml_dtypes.bfloat16" if dtype == "bfloat16" else super().host_dtype(dtype)

    def code(self, spec: CallSpec) -> Code:
        module, _, attr = adapter_target(self.backend).partition(":")
        imports = [
            "from backends.protocol import NormInputs, TrainingRun  # the adapter protocol",
            f"from {module} import {attr} as adapter",
        ]
        if spec.dtype == "bfloat16":
            imports.insert(0, "import ml_dtypes")
        prelude = ["backend = adapter() if isinstance(adapter, type) else adapter"]
        names = ["x", "weight", "bias", "running_mean", "running_var", "grad_y"]
        if spec.method == "train":
            batches = ", ".join(f"batch_{k}" for k in range(spec.steps))
            call = [
                f"batches = [{batches}]",
                "received = {",
                "    'batches': [b.astype(np.float64) for b in batches],",
                "    'initial_mean': initial_mean.astype(np.float64),",
                "    'initial_var': initial_var.astype(np.float64),",
                *[
                    f"    '{n}': {n}.astype(np.float64),"
                    for n in ("weight", "bias")
                    if n in spec.present
                ],
                "}  # the values the adapter received, in float64",
                "result = backend.train(",
                f"    {spec.norm!r},",
                "    TrainingRun(",
                "        batches=tuple(batches),",
                "        eps=eps,",
                "        momentum=momentum,",
                "        momentum_weighs=momentum_weighs,",
                "        running_var_estimator=estimator,",
                "        initial_mean=initial_mean,",
                "        initial_var=initial_var,",
                f"        weight={'weight' if 'weight' in spec.present else None},",
                f"        bias={'bias' if 'bias' in spec.present else None},",
                "    ),",
                ")",
            ]
            if spec.quantity in ("running_mean", "running_var"):
                call.append(f"observed = result.{spec.quantity}.astype(np.float64)")
            else:
                step = int(spec.quantity.rsplit(" ", 1)[1])
                call.append(f"observed = result.outputs[{step - 1}].astype(np.float64)")
            return Code(imports, prelude, call, "the adapter", needs=(module,))
        s = spec.scalars
        fields = [
            "x=x",
            "eps=eps",
            *[f"{n}={n}" for n in ("weight", "bias") if n in spec.present],
            *[
                f"{n}={s[n] if n != 'normalized_shape' else tuple(s[n])!r}"
                for n in ("num_groups", "normalized_shape", "dim")
                if s.get(n) is not None
            ],
            f"training={s.get('training', True)}",
            *[f"{n}={n}" for n in ("running_mean", "running_var") if n in spec.present],
        ]
        items = ", ".join(f"'{n}': {n}.astype(np.float64)" for n in names if n in spec.present)
        call = [
            f"inputs = NormInputs({', '.join(fields)})",
            f"received = {{{items}}}  # the values the adapter received, in float64",
        ]
        if spec.method == "forward":
            call.append(f"observed = backend.forward({spec.norm!r}, inputs).astype(np.float64)")
        else:
            name = spec.quantity.removeprefix("dL/d")
            call += [
                f"grads = backend.vjp({spec.norm!r}, inputs, grad_y)",
                f"observed = grads.{name}.astype(np.float64)",
            ]
        return Code(imports, prelude, call, "the adapter", needs=(module,))
