"""The worker process of a replicated backend, and the handle the adapter holds on it.

TensorFlow's logical devices and JAX's host device count must be set before the framework
initialises, and the other backends of the pytest process (which import both) must not see
them. So a replicated backend's framework lives in a child process started with its own
environment: `python -m backends.replica_worker module:Engine`. The adapter sends
(method, arguments) as a pickle on the child's stdin and reads (ok, value) back from a pipe
that is the child's stdout; the framework's own prints go to stderr. The engine is built once
and caches what it compiles, so each request costs one round trip of NumPy arrays.

The child ends when its stdin closes (the adapter, or the pytest process, went away), and a
child that dies mid-request is an error of the request, not a hang.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class WorkerError(RuntimeError):
    """The engine raised in the worker, or the worker died: the message carries its traceback
    or its exit status."""


class Worker:
    """A running worker process for one engine."""

    def __init__(self, engine: str, environment: dict[str, str]) -> None:
        env = {**os.environ, **environment}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self.engine = engine
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backends.replica_worker", engine],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        atexit.register(self.close)

    def call(self, method: str, *arguments: Any) -> Any:
        """engine.method(*arguments), computed in the worker."""
        try:
            pickle.dump((method, arguments), self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()
            ok, value = pickle.load(self.process.stdout)
        except (EOFError, BrokenPipeError, pickle.UnpicklingError) as error:
            status = self.process.wait()
            raise WorkerError(
                f"the replica worker of {self.engine} exited with status {status} ({error})"
            ) from None
        if ok:
            return value
        if isinstance(value, BaseException):
            raise value
        raise WorkerError(f"{self.engine} raised in its worker:\n{value}")

    def close(self) -> None:
        """End the worker: it exits when its stdin closes."""
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def serve(engine_name: str) -> None:
    """Answer requests on stdin until it closes; replies go to the original stdout."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the framework's prints must not corrupt the replies
    sys.stdout = sys.stderr
    engine = None
    requests = sys.stdin.buffer
    while True:
        try:
            method, arguments = pickle.load(requests)
        except EOFError:
            return
        try:
            if engine is None:  # built on the first request, so that its failure is a reply
                module_name, _, attr = engine_name.partition(":")
                engine = getattr(importlib.import_module(module_name), attr)()
            reply = (True, getattr(engine, method)(*arguments))
        except (ValueError, TypeError, NotImplementedError) as error:
            reply = (False, error)  # an argument the adapter refuses: the same exception
        except Exception:  # the framework raised: its traceback, as text, is the finding
            reply = (False, traceback.format_exc())
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()


if __name__ == "__main__":
    serve(sys.argv[1])
