"""Backend names, and loading a backend by name or as `package.module:attr`.

Built-in adapters are imported lazily, so `import normspec` works with no framework
installed; a backend whose framework is missing still loads and reports why it cannot run
through `unavailable_reason()`.
"""

from __future__ import annotations

import importlib

from backends.protocol import Backend

BUILTIN: dict[str, str] = {
    "numpy": "backends.numpy_backend:NumpyBackend",
    "torch": "backends.torch_backend:TorchFunctionalBackend",
    "torch-nn": "backends.torch_backend:TorchModuleBackend",
    "torch-channels-last": "backends.torch_backend:TorchChannelsLastBackend",
    "torch-cuda": "backends.torch_backend:TorchCudaBackend",
    "tensorflow": "backends.tensorflow_backend:KerasBackend",
    "tensorflow-nn": "backends.tensorflow_backend:TfNnBackend",
    "tensorflow-fused": "backends.tensorflow_backend:TfFusedBackend",
}


class UnknownBackendError(ValueError):
    """A backend name that is neither built in nor a loadable `module:attr`."""


def load_backend(spec: str) -> Backend:
    """The backend named `spec`: a built-in name, or `package.module:attr` of an external one.

    `attr` may be a Backend subclass (instantiated with no arguments) or an instance.
    """
    target = BUILTIN.get(spec, spec)
    if ":" not in target:
        raise UnknownBackendError(
            f"unknown backend {spec!r}; built-in backends: {', '.join(BUILTIN)}; "
            f"or name an external adapter as package.module:attr"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        if spec in BUILTIN:
            raise
        raise UnknownBackendError(
            f"cannot import {module_name!r} for backend {spec!r}: {error}"
        ) from error
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
    if spec not in BUILTIN:  # an external adapter is reported under the name it was loaded by
        backend.name = spec
    return backend
