"""Resumable training state: model, optimiser, step, best validation score, time spent."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> Any: ...


@dataclass
class TrainingProgress:
    """Where a run stands; saved with the weights and optimiser state."""

    step: int = 0
    best_psnr: float = float("-inf")
    elapsed: float = 0.0


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    progress: TrainingProgress,
    parts: dict[str, Stateful] | None = None,
    **extra: Any,
) -> None:
    """Write the training state atomically; ``parts``: more modules or optimisers (a
    discriminator and its optimiser), ``extra``: strings/numbers worth keeping."""
    tmp = path.with_suffix(".tmp")
    more = {f"part.{name}": part.state_dict() for name, part in (parts or {}).items()}
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": progress.step,
            "best_psnr": progress.best_psnr,
            "elapsed": progress.elapsed,
            **more,
            **extra,
        },
        tmp,
    )
    os.replace(tmp, path)


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    parts: dict[str, Stateful] | None = None,
) -> TrainingProgress:
    """Restore model (and optimiser) state saved by :func:`save_checkpoint`; each of
    ``parts`` that the file holds is restored too (one it lacks keeps its fresh state)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    for name, part in (parts or {}).items():
        if f"part.{name}" in state:
            part.load_state_dict(state[f"part.{name}"])
    return TrainingProgress(int(state["step"]), float(state["best_psnr"]), float(state["elapsed"]))
