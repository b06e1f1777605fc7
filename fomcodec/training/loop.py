"""The training loop every network family shares (FOMM, frame interpolators, the base-layer
fuser): steps, logging, validation, export of the best weights, resumable checkpoints.

::

    resume (RUN_DIR/checkpoint*.pt: weights, optimiser, parts, step, best score, time)
    until the target step or the time budget:
        train_step()                    -> loss terms      (the family's own)
        every log_every steps           -> RUN_DIR/log.jsonl + one stderr line
        every validate_every steps, and at the target
                                        -> validate() -> {"psnr": ..., ...}
                                           a new best psnr -> export(path, metrics)
        every checkpoint_every steps    -> checkpoint (and once more at the end)

A family subclasses :class:`TrainingLoop`, sets ``config`` (with ``steps``, ``batch_size``,
``log_every``, ``validate_every``, ``checkpoint_every`` and ``seed``), ``model``,
``optimizer``, ``sampler`` (an object with an ``rng``, reseeded on resume so a resumed run
draws new batches) and, where it has them, ``parts`` (more modules, optimisers or schedules
to checkpoint), and implements :meth:`train_step`, :meth:`validate` and :meth:`export`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fomcodec.training import checkpoint


class TrainingLoop:
    """Shared loop; see the module docstring. ``log_tag`` prefixes stderr lines."""

    log_tag = "train"
    config: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    sampler: Any

    def __init__(self, run_dir: Path, checkpoint_name: str = "checkpoint.pt") -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path = self.run_dir / checkpoint_name
        self.parts: dict[str, checkpoint.Stateful] = {}
        self.step = 0
        self.best_psnr = -math.inf
        self.elapsed = 0.0

    # ------------------------------------------------------------------ family-specific

    def train_step(self) -> dict[str, float]:
        """One optimisation step (``self.step`` advanced); its loss terms."""
        raise NotImplementedError

    def validate(self) -> dict[str, float] | None:
        """Validation metrics with a ``psnr`` key (the score), or None when there is none."""
        raise NotImplementedError

    def export(self, path: Path, metrics: dict[str, Any]) -> None:
        """Write the current weights (a new best) to ``path``."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line: what is trained, where."""
        count = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return f"{count} trainable parameters, step {self.step}"

    def record_fields(self) -> dict[str, Any]:
        """Extra fields of each log record (a stage, the learning rate)."""
        return {}

    def checkpoint_extra(self) -> dict[str, Any]:
        """Strings or numbers kept in the checkpoint besides the training state."""
        return {}

    def on_resume(self) -> None:
        """Called after a checkpoint was restored."""

    # --------------------------------------------------------------------------- shared

    def log(self, message: str) -> None:
        print(f"[{self.log_tag}] {message}", file=sys.stderr, flush=True)

    def resume(self) -> bool:
        """Restore the checkpoint in ``run_dir`` if there is one."""
        if not self.checkpoint_path.exists():
            return False
        progress = checkpoint.load_checkpoint(
            self.checkpoint_path, self.model, self.optimizer, self.parts
        )
        self.step, self.best_psnr, self.elapsed = (
            progress.step,
            progress.best_psnr,
            progress.elapsed,
        )
        self.sampler.rng = np.random.default_rng(self.config.seed + self.step)
        self.on_resume()
        self.log(f"resumed from {self.checkpoint_path} at step {self.step}")
        return True

    def save_checkpoint(self) -> None:
        checkpoint.save_checkpoint(
            self.checkpoint_path,
            self.model,
            self.optimizer,
            checkpoint.TrainingProgress(self.step, self.best_psnr, self.elapsed),
            self.parts,
            **self.checkpoint_extra(),
        )

    def run(
        self,
        steps: int | None = None,
        export_path: Path | None = None,
        time_budget_s: float | None = None,
    ) -> dict[str, float] | None:
        """Train until ``steps`` (default: the config's) or the time budget runs out; returns
        the last validation metrics (None if none ran)."""
        cfg = self.config
        target = steps or cfg.steps
        started = time.time()
        window: list[dict[str, float]] = []
        window_seconds = 0.0
        metrics = None
        self.log(f"{self.describe()} -> {target}")
        with (self.run_dir / "log.jsonl").open("a") as log:
            while self.step < target:
                t0 = time.time()
                window.append(self.train_step())
                window_seconds += time.time() - t0
                self.elapsed += time.time() - t0
                if self.step % cfg.log_every == 0 or self.step == target:
                    mean = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
                    record = {
                        "step": self.step,
                        "elapsed_s": round(self.elapsed, 1),
                        **self.record_fields(),
                        "samples_per_s": round(
                            len(window) * cfg.batch_size / max(window_seconds, 1e-9), 2
                        ),
                        **mean,
                    }
                    window, window_seconds = [], 0.0
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    self.log(_fields(record))
                if self.step % cfg.validate_every == 0 or self.step == target:
                    metrics = self.validate()
                    if metrics is not None:
                        log.write(json.dumps({"step": self.step, "validation": metrics}) + "\n")
                        log.flush()
                        self.log(f"validation step={self.step} {_fields(metrics)}")
                        if metrics["psnr"] > self.best_psnr:
                            self.best_psnr = metrics["psnr"]
                            if export_path is not None:
                                self.export(export_path, metrics)
                if self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                if time_budget_s is not None and time.time() - started > time_budget_s:
                    self.log(f"time budget reached at step {self.step}")
                    break
        self.save_checkpoint()
        return metrics


def _fields(record: dict[str, Any]) -> str:
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
    )


def device_name(device: torch.device) -> str:
    """What trained: a CUDA device's name, or the CPU and its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu x{torch.get_num_threads()}"
