"""torch-sync: `torch.nn.SyncBatchNorm` over `torch.distributed`, one rank per GPU.

SyncBatchNorm refuses CPU tensors ("SyncBatchNorm expected input tensor to be on GPU or
XPU"), and one GPU cannot hold the several ranks a synchronized step needs without NCCL
refusing two ranks on one device; so this backend is listed, and skipped with that reason,
wherever fewer than two GPUs are at hand. Its adapter is left to a machine that has them.
"""

from __future__ import annotations

import importlib.metadata

from backends.protocol import Conventions
from backends.replicated import ReplicatedBackend
from normspec.vocabulary import ReplicatedResult, ReplicatedRun


class TorchSyncBackend(ReplicatedBackend):
    """SyncBatchNorm on R GPUs: available only with two GPUs or more (see the module)."""

    name = "torch-sync"
    conventions = Conventions(
        default_eps={"batch_norm": 1e-5},
        momentum_weighs="new",
        default_momentum=0.1,
        running_var_estimators=("unbiased",),
        cumulative_average=True,
        layout="channels_first",
        default_affine=True,
        zero_variance_zero_eps="refused",
    )

    def unavailable_reason(self) -> str | None:
        try:
            import torch
        except ImportError as error:
            return f"torch is not installed: {error}"

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus < 2:
            return (
                f"SyncBatchNorm needs one GPU per rank and {gpus} GPU(s) are at hand "
                "(on CPU tensors it raises 'SyncBatchNorm expected input tensor to be on GPU "
                "or XPU')"
            )
        return "the torch-sync adapter is not written yet (no machine with two GPUs to check it)"

    def version(self) -> str:
        try:
            return importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            return ""

    def replicated_step(self, norm: str, run: ReplicatedRun) -> ReplicatedResult:
        raise NotImplementedError(self.unavailable_reason())
