"""Backends that take the process down on one norm and are correct on every other."""

from __future__ import annotations

import ctypes
import os

from backends.numpy_backend import NumpyBackend


class SegfaultsOnGroupNorm(NumpyBackend):
    """Reads address 0 on any group_norm call: a segmentation fault (SIGSEGV), as a kernel
    that indexes past its buffer on an odd shape does."""

    def forward(self, norm, inputs):
        if norm == "group_norm":
            ctypes.string_at(0)
        return super().forward(norm, inputs)


class ExitsOnInstanceNorm(NumpyBackend):
    """Calls os._exit(3) on any instance_norm call, as a native library that aborts does."""

    def forward(self, norm, inputs):
        if norm == "instance_norm":
            os._exit(3)
        return super().forward(norm, inputs)
