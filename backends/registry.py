"""Backend names, and loading a backend by name or as `package.module:attr`.

Built-in adapters are imported lazily, so `import normspec` works with no framework
installed; a backend whose framework is missing still loads and reports why it cannot run
through `unavailable_reason()`. Installed packages add backends under the entry-point group
`normspec.backends` (name = "package.module:attr"), found the way pytest finds its plugins;
a built-in name always means the built-in backend.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

from backends.protocol import Backend, Conventions
from normspec.vocabulary import Gradients, NormInputs, TrainingResult, TrainingRun

BUILTIN: dict[str, str] = {
    "numpy": "backends.numpy_backend:NumpyBackend",
    "torch": "backends.torch_backend:TorchFunctionalBackend",
    "torch-nn": "backends.torch_backend:TorchModuleBackend",
    "torch-channels-last": "backends.torch_backend:TorchChannelsLastBackend",
    "torch-cuda": "backends.torch_backend:TorchCudaBackend",
    "torch-compile": "backends.torch_compile_backend:TorchCompileBackend",
    "tensorflow": "backends.tensorflow_backend:KerasBackend",
    "tensorflow-nn": "backends.tensorflow_backend:TfNnBackend",
    "tensorflow-fused": "backends.tensorflow_backend:TfFusedBackend",
    "flax": "backends.flax_backend:FlaxBackend",
    "onnxruntime": "backends.onnxruntime_backend:OnnxRuntimeBackend",
}
#: Replicated backends (backends/replicated.py): BatchNorm synchronized over R replicas, each
#: framework in a worker process of its own; checked by properties/test_replicated_batch_norm.py
#: and the conventions only.
REPLICATED: dict[str, str] = {
    "numpy-sync": "backends.numpy_sync_backend:NumpySyncBackend",
    "keras-sync": "backends.keras_sync_backend:KerasSyncBackend",
    "flax-sync": "backends.flax_sync_backend:FlaxSyncBackend",
    "torch-sync": "backends.torch_sync_backend:TorchSyncBackend",
}
#: The honest controls (backends/honest_backends.py): built in, selected by name, not by
#: default; they test normspec's own specificity, not a framework.
CONTROLS: dict[str, str] = {
    "exact": "backends.honest_backends:ExactBackend",
    "rounding": "backends.honest_backends:RoundingBackend",
}


#: The entry-point group under which installed packages register their backends.
ENTRY_POINT_GROUP = "normspec.backends"


def installed() -> dict[str, str]:
    """{name: "module:attr"} of the backends installed packages register under
    ENTRY_POINT_GROUP, less those that reuse a built-in name."""
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return {
        ep.name: ep.value for ep in found if ep.name not in BUILTIN and ep.name not in REPLICATED
    }


def backend_names() -> list[str]:
    """Every backend a name loads: the built-in ones, the replicated ones, the honest controls,
    then the installed ones by name."""
    return [*BUILTIN, *REPLICATED, *CONTROLS, *sorted(installed())]


class UnknownBackendError(ValueError):
    """A backend name that is neither built in nor a loadable `module:attr`."""


def load_backend(spec: str) -> Backend:
    """The backend named `spec`: a built-in name, the name of an installed one (entry point
    group `normspec.backends`), or `package.module:attr` of an external one.

    `attr` may be a Backend subclass (instantiated with no arguments) or an instance.
    """
    target = (
        BUILTIN.get(spec)
        or REPLICATED.get(spec)
        or CONTROLS.get(spec)
        or (installed().get(spec) if ":" not in spec else None)
        or spec
    )
    if ":" not in target:
        plugins = ", ".join(installed()) or "none"
        raise UnknownBackendError(
            f"unknown backend {spec!r}; built-in backends: {', '.join(BUILTIN)}; replicated: "
            f"{', '.join(REPLICATED)}; controls: "
            f"{', '.join(CONTROLS)}; installed ({ENTRY_POINT_GROUP} entry points): "
            f"{plugins}; or name an external adapter as package.module:attr"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if spec in BUILTIN or spec in REPLICATED or spec in CONTROLS:
            raise
        if not _names_the_module(error, module_name):
            return BrokenAdapter(spec, error)  # it exists, and needs something missing
        raise UnknownBackendError(
            f"cannot import {module_name!r} for backend {spec!r}: {error} (is the module on "
            f"the path? normspec looks in the current directory, {Path.cwd()})"
        ) from error
    except Exception as error:  # the module exists and its import fails: a finding
        if spec in BUILTIN or spec in REPLICATED or spec in CONTROLS:
            raise
        return BrokenAdapter(spec, error)
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise UnknownBackendError(
            f"module {module_name!r} has no attribute {attr!r} (backend {spec!r})"
        ) from None
    backend = obj() if isinstance(obj, type) else obj
    if not isinstance(backend, Backend):
        raise UnknownBackendError(
            f"{spec!r} is a {type(backend).__name__}, not a backends.protocol.Backend"
        )
    if (
        spec not in BUILTIN and spec not in REPLICATED and spec not in CONTROLS
    ):  # reported under the name it was loaded by
        backend.name = spec
    return backend


def _names_the_module(error: ModuleNotFoundError, module_name: str) -> bool:
    """Whether the missing module is the adapter's own module (or a package above it), as
    opposed to something the adapter imports."""
    parts = module_name.split(".")
    return error.name in {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


class AdapterImportError(RuntimeError):
    """An external adapter's module exists but its import failed."""


class BrokenAdapter(Backend):
    """An external adapter whose module raised on import: every call fails with that error,
    so the report shows each of its cells as a failure with the reason, and the rest of the
    run goes on (a kernel library that no longer loads is a finding, not a usage error)."""

    dtypes = ("float16", "bfloat16", "float32", "float64")
    trains = frozenset({"batch_norm", "instance_norm"})
    conventions = Conventions(
        default_eps={},
        momentum_weighs="new",
        default_momentum=None,
        running_var_estimators=("unbiased", "biased"),
        cumulative_average=False,
        layout="unknown (the adapter did not import)",
        default_affine=False,
        zero_variance_zero_eps="nan",
    )

    def __init__(self, spec: str, error: BaseException) -> None:
        self.name = spec
        self.error = f"import error: {type(error).__name__}: {error}"

    def _fail(self, *_: object) -> None:
        raise AdapterImportError(f"the adapter {self.name!r} could not be imported: {self.error}")

    def forward(self, norm: str, inputs: NormInputs):
        self._fail()

    def forward_with_defaults(self, norm: str, inputs: NormInputs):
        self._fail()

    def vjp(self, norm: str, inputs: NormInputs, grad_y) -> Gradients:
        self._fail()

    def train(self, norm: str, run: TrainingRun) -> TrainingResult:
        self._fail()

    def train_with_defaults(self, norm, batches, initial_mean, initial_var) -> TrainingResult:
        self._fail()
