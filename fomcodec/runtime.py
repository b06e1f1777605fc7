"""Where and how networks run: device choice, bf16 autocast, thread settings."""

from __future__ import annotations

import contextlib

import torch

from fomcodec.errors import FomcError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None picks CUDA when available, else the CPU; anything else is checked."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise FomcError(f"unknown device '{device}'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise FomcError(f"device '{device}' requested but CUDA is not available")
    return resolved


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is fast here (AVX-512 BF16/AMX CPUs, Ampere+ GPUs)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    return False


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``enabled``, else a no-op."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@contextlib.contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to /dev/null for the block: native libraries (MediaPipe's
    TensorFlow Lite, glog) write their start-up chatter there, past Python's ``sys.stderr``."""
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _task_ids() -> list[int]:
    import os

    try:
        return [int(name) for name in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


@contextlib.contextmanager
def ordinary_scheduling():
    """Undo, at the end of the block, any real-time scheduling given to this process's threads
    within it. SVT-AV1, when run as root, puts the thread that opens an encoder and the
    threads it starts on ``SCHED_FIFO`` priority 99, which can starve the rest of the machine
    (and skews every timing after it). Threads already real-time before the block keep it."""
    import os

    if not hasattr(os, "sched_getscheduler"):
        yield
        return
    realtime = (os.SCHED_FIFO, os.SCHED_RR)

    def realtime_tasks() -> set[int]:
        tasks = set()
        for task in _task_ids():
            with contextlib.suppress(OSError):
                if os.sched_getscheduler(task) in realtime:
                    tasks.add(task)
        return tasks

    before = realtime_tasks()
    try:
        yield
    finally:
        for task in realtime_tasks() - before:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(task, os.SCHED_OTHER, os.sched_param(0))
