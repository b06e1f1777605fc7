"""Resumable training state: model, optimiser, step, best validation score, time spent."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class TrainingProgress:
    """Where a run stands; saved with the weights and optimiser state."""

    step: int = 0
    best_psnr: float = float("-inf")
    elapsed: float = 0.0


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    progress: TrainingProgress, **extra: Any) -> None:
    """Write the training state atomically (``extra``: strings/numbers worth keeping)."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "step": progress.step, "best_psnr": progress.best_psnr,
                "elapsed": progress.elapsed, **extra}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None) -> TrainingProgress:
    """Restore model (and optimiser) state saved by :func:`save_checkpoint`."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    return TrainingProgress(int(state["step"]), float(state["best_psnr"]),
                            float(state["elapsed"]))
