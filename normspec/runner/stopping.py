"""How a check stops: Ctrl-C and SIGTERM end the property suite's child with every process
it started, and never cut the writing of the reports in half.

The child runs in a process group of its own, so that one signal reaches everything it
started (a framework's worker processes, a helper an adapter spawned). SIGTERM (a cancelled
CI job) and SIGHUP (a closed terminal) raise Stopped in this process, as Ctrl-C raises
KeyboardInterrupt; on the way out the engine ends the child's group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator


class Stopped(BaseException):
    """`normspec check` was told to stop (SIGTERM, SIGHUP); `signal` says which.

    A BaseException, as KeyboardInterrupt is: a request to stop, not an error to handle."""

    def __init__(self, number: int) -> None:
        self.signal = signal.Signals(number)
        super().__init__(self.signal.name)


#: The signals that stop a check, as Ctrl-C interrupts it.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
#: Seconds the child's group has to end on SIGTERM before it is killed.
GRACE_SECONDS = 5.0


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into Stopped for the duration of the block."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return

    def stop(number: int, frame: object) -> None:
        raise Stopped(number)

    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        _restore(previous)


def end_process_group(child: subprocess.Popen) -> None:
    """End `child` and every process in its group: SIGTERM, then SIGKILL after a grace."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block is done, then deliver them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {
        s: signal.signal(s, lambda number, frame: held.append(number))
        for s in (signal.SIGINT, *STOP_SIGNALS)
    }
    try:
        yield
    finally:
        _restore(previous)
        for number in held:
            signal.raise_signal(number)


def _restore(previous: dict) -> None:
    for number, handler in previous.items():
        # None: a handler installed from C, which Python cannot reinstall
        signal.signal(number, signal.SIG_DFL if handler is None else handler)
