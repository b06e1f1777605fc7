"""Which training losses validate best: a table over branches of one FOMM training run.

    python benchmarks/loss_comparison.py runs/loss-l1 runs/loss-l1-msssim ... [--frames 100]
        [--at-step N] [--markdown FILE]

Each RUN_DIR is a ``fomc train`` run with its own loss weights (read from its checkpoint),
ideally branched from one checkpoint so that the weights, the optimiser, the moving average and
the order of the training pairs are the same at the start. For each run the table gives its
loss weights, training speed (samples/s), the in-training validation PSNR at every validated step
(16 frames per held-out clip), and its exported best weights (``RUN_DIR/candidate.safetensors``)
scored through the whole codec on the held-out clips like ``evaluate_model.py``: PSNR, SSIM and
MS-SSIM, frame 0 left out. ``--at-step N`` compares runs of different lengths at equal steps:
only validations up to step N count, and the best of them is scored from the copy of the
exported weights named ``RUN_DIR/candidate-step<S>.safetensors``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_model import REPO, evaluate_clip  # noqa: E402

from fomcodec.zoo import load_model  # noqa: E402

WEIGHTS = {
    "weight_l1": "L1",
    "weight_ms_ssim": "MS-SSIM",
    "weight_adversarial": "adv",
    "weight_feature_matching": "FM",
}


def losses(run_dir: Path) -> str:
    """The run's loss weights, e.g. ``10 L1 + 5 MS-SSIM``."""
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    config = json.loads(state["train_config"])
    return " + ".join(
        f"{config[key]:g} {label}" for key, label in WEIGHTS.items() if config.get(key)
    )


def log_summary(run_dir: Path, last_step: int | None) -> tuple[dict[int, float], float]:
    """Validation PSNR per step and mean training samples/s, from ``log.jsonl``, up to
    ``last_step`` when given."""
    validation, speeds = {}, []
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if last_step is not None and record["step"] > last_step:
            continue
        if "validation" in record:
            validation[record["step"]] = record["validation"]["psnr"]
        elif "samples_per_s" in record:
            speeds.append(record["samples_per_s"])
    return validation, float(np.mean(speeds)) if speeds else float("nan")


def best_weights(run_dir: Path, best_step: int, at_step: int | None) -> Path:
    """The exported weights to score: the run's best (``candidate.safetensors``), or with
    ``at_step`` the kept copy from ``best_step``, its best validation up to that step."""
    if at_step is None:
        return run_dir / "candidate.safetensors"
    path = run_dir / f"candidate-step{best_step}.safetensors"
    if not path.exists():
        raise SystemExit(f"{path} is missing: keep a copy of each exported candidate")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--split", type=Path, default=REPO / "models/splits/shared-data-v1.json")
    parser.add_argument("--clips", type=Path, default=REPO.parent / "shared/data/clips")
    parser.add_argument("--frames", type=int, default=100, help="first N frames; 0: whole clips")
    parser.add_argument("--at-step", type=int, help="compare at this training step")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    args = parser.parse_args()
    names = json.loads(args.split.read_text())["validation"]
    summaries = {run: log_summary(run, args.at_step) for run in args.runs}
    steps = sorted({step for validation, _ in summaries.values() for step in validation})
    lines = [
        "| run | losses | samples/s | "
        + " | ".join(f"val. {s}" for s in steps)
        + " | best step | PSNR dB | SSIM | MS-SSIM |",
        "|---|---|---|" + "---|" * len(steps) + "---|---|---|---|",
    ]
    for run in args.runs:
        validation, speed = summaries[run]
        if not validation:
            raise SystemExit(f"{run}: its log has no validation to compare")
        best = max(validation, key=validation.get)
        model = load_model(best_weights(run, best, args.at_step), device="cpu")
        results = [
            evaluate_clip({"codec": model}, args.clips / name, args.frames) for name in names
        ]
        mean = {
            m: float(np.mean([r["codec"][m] for r in results])) for m in ("psnr", "ssim", "ms_ssim")
        }
        cells = " | ".join(f"{validation[s]:.3f}" if s in validation else "-" for s in steps)
        lines.append(
            f"| {run.name} | {losses(run)} | {speed:.2f} | {cells} | {best} | "
            f"{mean['psnr']:.3f} | {mean['ssim']:.4f} | {mean['ms_ssim']:.4f} |"
        )
        print(lines[-1], flush=True)
    span = f"first {args.frames} frames" if args.frames else "all frames"
    text = "\n".join(
        [f"Held-out clips: {len(names)}, {span}, through the whole codec.", "", *lines]
    )
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
