"""Training the facial frame interpolator: triplets of consecutive frames, Charbonnier +
smoothness losses, Adamax, the paper's three stages, resumable checkpoints, validation PSNR
against frame averaging, export of the best weights (safetensors, fp16, config in metadata).

Stages (the paper's schedule): ``asymmetric`` pre-trains the asymmetric block (output: its
occlusion blend of the two WAMV-warped frames), ``symmetric`` the symmetric block (output: the
blend of the two WSMV-warped frames by its own occlusion map), ``finetune`` the whole network
(smoothness weight 0 by default). A stage starting without its own checkpoint takes its
weights from ``init_from`` or else from the latest earlier stage's checkpoint in the run
folder. Data: the clip arrays of :func:`fomcodec.training.dataset.build_frame_cache`
(per-clip uint8 (N, H, W, 3) ``.npy``), split by person (``models/splits``).

    python -m fomcodec.training.interpolation --config models/interpolators/ffi-fast.yaml \\
        --stage asymmetric --run-dir runs/ffi-fast --steps 20000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fomcodec.nets.interpolator import VARIANTS, InterpolatorConfig
from fomcodec.runtime import autocast, bf16_supported, resolve_device
from fomcodec.tensors import image_psnr
from fomcodec.training.dataset import build_frame_cache, load_split
from fomcodec.training.loop import TrainingLoop, device_name
from fomcodec.zoo import (
    Interpolator,
    InterpolatorConfigs,
    build_interpolator,
    get_interpolator_config,
    load_interpolator,
    save_interpolator,
)

STAGES = ("asymmetric", "symmetric", "finetune")
STAGE_MODES = {"asymmetric": "asymmetric", "symmetric": "symmetric", "finetune": "full"}


@dataclass
class InterpolatorTrainConfig:
    """Hyper-parameters (the paper's / AdaCoF's recipe where it applies)."""

    stage: str = "asymmetric"
    steps: int = 50_000
    batch_size: int = 8
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    lr_decay_every: int = 0  # steps; 0: constant learning rate
    lr_decay: float = 0.5
    charbonnier_eps: float = 1e-3
    smoothness_weight: float | None = None  # None: 0.01 when pre-training, 0 when fine-tuning
    crop: int | None = None  # random square crops (None: whole frames)
    motion_candidates: int = 1  # crops drawn per triplet; the most moving one is kept
    gaps: list[int] = field(default_factory=lambda: [1])  # triplet (i, i+g, i+2g), g drawn
    hflip: float = 0.5
    vflip: float = 0.0
    time_reversal: float = 0.5
    amp: bool = True  # bf16 autocast where the device has fast bf16
    grad_clip: float | None = None
    freeze: list[str] = field(default_factory=list)  # parameter-name prefixes not trained
    init_from: str | None = None  # checkpoint (.pt) or weights (.safetensors)
    teacher: str | None = None  # a trained interpolator (name or path) to distil from
    teacher_weight: float = 0.0  # weight of the Charbonnier distance to the teacher's frame
    log_every: int = 10
    checkpoint_every: int = 200
    validate_every: int = 1000
    validation_per_clip: int = 8
    validation_batch: int = 8
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        self.gaps = [int(g) for g in self.gaps]
        if not self.gaps or min(self.gaps) < 1:
            raise ValueError("gaps must be positive")

    @property
    def mode(self) -> str:
        return STAGE_MODES[self.stage]

    @property
    def smoothness(self) -> float:
        if self.smoothness_weight is not None:
            return float(self.smoothness_weight)
        return 0.0 if self.stage == "finetune" else 0.01


# --------------------------------------------------------------------------------------- data


class TripletSampler:
    """Random triplets (I0, I_mid, I1) = frames (i, i+g, i+2g) of random clips, with random
    horizontal (and optionally vertical) flips, time reversal and optional random crops.

    ``motion_candidates`` > 1 draws that many crop positions and keeps the one where I0 and I1
    differ most: in talking-head footage most of the frame is static, and crops of static
    background teach the motion heads nothing (measured: with uniform crops the asymmetric
    block stayed at the frame-averaging baseline for 1,500 steps)."""

    def __init__(
        self,
        arrays: list[np.ndarray],
        seed: int = 0,
        gaps: list[int] | None = None,
        crop: int | None = None,
        hflip: float = 0.5,
        vflip: float = 0.0,
        time_reversal: float = 0.5,
        augment: bool = True,
        motion_candidates: int = 1,
    ) -> None:
        self.gaps = list(gaps or [1])
        self.arrays = [a for a in arrays if len(a) >= 2 * min(self.gaps) + 1]
        if not self.arrays:
            raise ValueError(f"no clip with at least {2 * min(self.gaps) + 1} frames")
        self.rng = np.random.default_rng(seed)
        self.crop = crop
        self.hflip, self.vflip, self.time_reversal = hflip, vflip, time_reversal
        self.augment = augment
        self.motion_candidates = max(1, motion_candidates)

    def _crop_position(self, triplet: np.ndarray) -> tuple[int, int]:
        height, width = triplet.shape[1:3]
        positions = [
            (
                int(self.rng.integers(height - self.crop + 1)),
                int(self.rng.integers(width - self.crop + 1)),
            )
            for _ in range(self.motion_candidates)
        ]
        if len(positions) == 1:
            return positions[0]
        step = 4  # motion energy on a subsampled grid is enough to rank the crops
        first = triplet[0, ::step, ::step].astype(np.int16)
        last = triplet[2, ::step, ::step].astype(np.int16)
        energy = np.abs(first - last).sum(axis=2)
        size = self.crop // step
        scores = [
            energy[top // step : top // step + size, left // step : left // step + size].sum()
            for top, left in positions
        ]
        return positions[int(np.argmax(scores))]

    def _one(self) -> np.ndarray:
        frames = self.arrays[self.rng.integers(len(self.arrays))]
        gaps = [g for g in self.gaps if 2 * g < len(frames)]
        gap = int(self.rng.choice(gaps))
        start = int(self.rng.integers(len(frames) - 2 * gap))
        triplet = np.stack([frames[start], frames[start + gap], frames[start + 2 * gap]])
        height, width = triplet.shape[1:3]
        if self.crop is not None and self.crop < min(height, width):
            top, left = self._crop_position(triplet)
            triplet = triplet[:, top : top + self.crop, left : left + self.crop]
        if self.augment:
            if self.rng.random() < self.hflip:
                triplet = triplet[:, :, ::-1]
            if self.rng.random() < self.vflip:
                triplet = triplet[:, ::-1]
            if self.rng.random() < self.time_reversal:
                triplet = triplet[::-1]
        return np.ascontiguousarray(triplet)

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Three (B, 3, H, W) float tensors in [0, 1]: frame 0, the middle frame, frame 1."""
        data = torch.from_numpy(np.stack([self._one() for _ in range(batch)]))
        data = data.permute(1, 0, 4, 2, 3).float().div_(255)
        return data[0], data[1], data[2]


def validation_triplets(clips: list[np.ndarray], per_clip: int, gap: int = 1) -> list[np.ndarray]:
    """Fixed triplets, ``per_clip`` evenly spaced ones per clip: a list of (3, H, W, 3) uint8."""
    out = []
    for frames in clips:
        last = len(frames) - 2 * gap
        if last < 1:
            continue
        for start in np.linspace(0, last - 1, min(per_clip, last)).astype(int):
            out.append(np.stack([frames[start], frames[start + gap], frames[start + 2 * gap]]))
    return out


# ------------------------------------------------------------------------------------- losses


def charbonnier(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """mean(sqrt((prediction - target)^2 + eps^2))."""
    return torch.sqrt((prediction.float() - target.float()) ** 2 + eps * eps).mean()


def smoothness(fields: list[torch.Tensor]) -> torch.Tensor:
    """Mean absolute horizontal and vertical differences of (B, 2, H, W) motion fields,
    averaged over the fields (first-order total variation)."""
    if not fields:
        raise ValueError("no motion fields")
    terms = [
        (f[..., :, 1:] - f[..., :, :-1]).abs().mean()
        + (f[..., 1:, :] - f[..., :-1, :]).abs().mean()
        for f in fields
    ]
    return torch.stack(terms).mean()


def _to_tensor(batch: list[np.ndarray], device: torch.device) -> torch.Tensor:
    data = torch.from_numpy(np.stack(batch)).to(device)
    return data.permute(1, 0, 4, 2, 3).float().div_(255)


@torch.no_grad()
def evaluate(
    model: Interpolator,
    triplets: list[np.ndarray],
    mode: str,
    device: torch.device,
    batch: int = 8,
    amp: bool = False,
) -> dict[str, float]:
    """Mean PSNR of the model's middle frames (clamped) and of the frame-averaging baseline."""
    was_training = model.training
    model.eval()
    ours, average = [], []
    for start in range(0, len(triplets), batch):
        frame0, middle, frame1 = _to_tensor(triplets[start : start + batch], device)
        with autocast(device, amp):
            prediction = model(frame0, frame1, mode=mode)["frame"].float().clamp(0, 1)
        ours.append(image_psnr(prediction, middle).cpu())
        average.append(image_psnr((frame0 + frame1) / 2, middle).cpu())
    model.train(was_training)
    if not ours:
        return {"psnr": float("nan"), "psnr_average_baseline": float("nan"), "triplets": 0}
    return {
        "psnr": float(torch.cat(ours).mean()),
        "psnr_average_baseline": float(torch.cat(average).mean()),
        "triplets": len(triplets),
    }


# ------------------------------------------------------------------------------------ trainer


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("model", state)


def load_overlapping(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load ``state`` into ``model``; where an output-channel count differs (an ablation's
    occlusion head: 4 channels instead of 1) copy the leading channels and keep the rest of
    the fresh initialisation. Returns the names loaded in part; anything else that does not
    fit raises ``ValueError``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(f"initial weights lack {len(missing)} tensors, e.g. {missing[0]}")
    merged, partial = {}, []
    for name, tensor in own.items():
        other = state[name].to(tensor.dtype)
        if other.shape == tensor.shape:
            merged[name] = other
        elif other.dim() == tensor.dim() and other.shape[1:] == tensor.shape[1:]:
            rows = min(other.shape[0], tensor.shape[0])
            merged[name] = tensor.clone()
            merged[name][:rows] = other[:rows]
            partial.append(name)
        else:
            raise ValueError(
                f"{name}: initial weights {tuple(other.shape)} do not fit {tuple(tensor.shape)}"
            )
    model.load_state_dict(merged)
    return partial


class InterpolatorTrainer(TrainingLoop):
    """Trains one stage of a frame interpolator (either architecture) on the shared loop;
    ``run_dir`` keeps ``checkpoint-<stage>.pt`` and ``log.jsonl``."""

    def __init__(
        self,
        model_config: InterpolatorConfigs,
        train_config: InterpolatorTrainConfig,
        run_dir: Path,
        train_clips: list[np.ndarray],
        validation_clips: list[np.ndarray],
    ) -> None:
        super().__init__(run_dir, f"checkpoint-{train_config.stage}.pt")
        self.log_tag = train_config.stage
        self.model_config = model_config
        self.config = train_config
        self.device = resolve_device(train_config.device)
        self.amp = train_config.amp and bf16_supported(self.device)
        torch.manual_seed(train_config.seed)
        self.model = build_interpolator(model_config).to(self.device).train()
        self.teacher = (
            load_interpolator(train_config.teacher, self.device).requires_grad_(False)
            if train_config.teacher and train_config.teacher_weight > 0
            else None
        )
        frozen = tuple(train_config.freeze)
        self.parameters = [
            p for n, p in self.model.named_parameters() if not (frozen and n.startswith(frozen))
        ]
        for name, parameter in self.model.named_parameters():
            parameter.requires_grad_(not (frozen and name.startswith(frozen)))
        self.optimizer = torch.optim.Adamax(
            self.parameters, lr=train_config.lr, betas=train_config.betas
        )
        self.sampler = TripletSampler(
            train_clips,
            seed=train_config.seed,
            gaps=train_config.gaps,
            crop=train_config.crop,
            hflip=train_config.hflip,
            vflip=train_config.vflip,
            time_reversal=train_config.time_reversal,
            motion_candidates=train_config.motion_candidates,
        )
        self.validation = validation_triplets(
            validation_clips, train_config.validation_per_clip, min(train_config.gaps)
        )
        if not self.resume():
            self._initialise()

    def _initialise(self) -> None:
        """Start from ``init_from``, else from the latest earlier stage in the run folder."""
        source: Path | None = None
        if self.config.init_from:
            source = Path(self.config.init_from)
        else:
            earlier = STAGES[: STAGES.index(self.config.stage)]
            for stage in reversed(earlier):
                candidate = self.run_dir / f"checkpoint-{stage}.pt"
                if candidate.exists():
                    source = candidate
                    break
        if source is not None:
            partial = load_overlapping(self.model, _read_state(source))
            note = f" (in part: {', '.join(partial)})" if partial else ""
            self.log(f"initialised from {source}{note}")

    def _lr(self) -> float:
        cfg = self.config
        if not cfg.lr_decay_every:
            return cfg.lr
        return cfg.lr * cfg.lr_decay ** (self.step // cfg.lr_decay_every)

    def describe(self) -> str:
        return (
            f"{sum(p.numel() for p in self.parameters)} trainable parameters on "
            f"{self.device}{' (bf16)' if self.amp else ''}, step {self.step}"
        )

    def record_fields(self) -> dict[str, Any]:
        return {"stage": self.config.stage, "lr": self._lr()}

    def checkpoint_extra(self) -> dict[str, Any]:
        return {
            "stage": self.config.stage,
            "train_config": json.dumps(dataclasses.asdict(self.config)),
            "model_config": self.model_config.to_yaml(),
        }

    def losses(
        self, frame0: torch.Tensor, middle: torch.Tensor, frame1: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Weighted loss terms for one batch."""
        cfg = self.config
        weight = cfg.smoothness
        with autocast(self.device, self.amp):
            out = self.model(frame0, frame1, mode=cfg.mode, return_motion=weight > 0)
        terms = {"charbonnier": charbonnier(out["frame"], middle, cfg.charbonnier_eps)}
        if self.teacher is not None:
            with torch.no_grad(), autocast(self.device, self.amp):
                taught = self.teacher(frame0, frame1)["frame"]
            terms["distillation"] = cfg.teacher_weight * charbonnier(
                out["frame"], taught, cfg.charbonnier_eps
            )
        if weight > 0:
            terms["smoothness"] = weight * smoothness(out["motion"])
        return terms

    def train_step(self) -> dict[str, float]:
        frame0, middle, frame1 = (
            t.to(self.device, non_blocking=True)
            for t in self.sampler.sample(self.config.batch_size)
        )
        terms = self.losses(frame0, middle, frame1)
        loss = sum(terms.values())
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.config.grad_clip)
        self.optimizer.step()
        self.step += 1
        return {k: v.item() for k, v in terms.items()} | {"loss": loss.item()}

    def validate(self) -> dict[str, float] | None:
        if not self.validation:
            return None
        return evaluate(
            self.model,
            self.validation,
            self.config.mode,
            self.device,
            self.config.validation_batch,
            self.amp,
        )

    def export(self, path: Path, metrics: dict[str, Any]) -> None:
        save_interpolator(
            self.model,
            path,
            extra_metadata={
                "stage": self.config.stage,
                "step": str(self.step),
                "validation": json.dumps(metrics),
                "train_seconds": str(round(self.elapsed)),
                "device": device_name(self.device),
                "train_config": json.dumps(dataclasses.asdict(self.config)),
            },
        )


def train_interpolator_from_folder(
    model_config: InterpolatorConfigs,
    train_config: InterpolatorTrainConfig,
    clips_dir: Path,
    split_path: Path,
    cache_dir: Path,
    run_dir: Path,
    export_path: Path | None = None,
    time_budget_s: float | None = None,
) -> InterpolatorTrainer:
    """Cache the split's clips from ``clips_dir`` (256x256, as for FOMM training), then train
    one stage (resuming from ``run_dir``)."""
    split = load_split(split_path)
    size = model_config.image_size
    train = [
        np.load(p, mmap_mode="r")
        for p in build_frame_cache([clips_dir / name for name in split["train"]], cache_dir, size)
    ]
    validation = [
        np.load(p, mmap_mode="r")
        for p in build_frame_cache(
            [clips_dir / name for name in split["validation"]], cache_dir, size
        )
    ]
    trainer = InterpolatorTrainer(model_config, train_config, run_dir, train, validation)
    trainer.run(export_path=export_path, time_budget_s=time_budget_s)
    return trainer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Train one stage of the facial frame interpolator (resumes from --run-dir)."
    )
    parser.add_argument("--config", default="models/interpolators/ffi-fast.yaml")
    parser.add_argument("--stage", choices=STAGES, default="asymmetric")
    parser.add_argument("--data", default="../shared/data/clips", help="folder of raw clips")
    parser.add_argument("--split", default="models/splits/shared-data-v1.json")
    parser.add_argument("--cache", default="data/cache", help="decoded frames (never commit)")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--export", default=None, help="best weights (.safetensors)")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument(
        "--motion-candidates",
        type=int,
        default=1,
        help="crops drawn per triplet, the most moving one kept",
    )
    parser.add_argument(
        "--gaps", default="1", help="comma-separated frame gaps g of the triplets (i, i+g, i+2g)"
    )
    parser.add_argument("--smoothness", type=float, default=None)
    parser.add_argument("--init-from", default=None)
    parser.add_argument("--teacher", default=None, help="interpolator to distil from")
    parser.add_argument(
        "--teacher-weight", type=float, default=0.0, help="weight of the distillation term"
    )
    parser.add_argument(
        "--freeze",
        default="",
        help="comma-separated parameter-name prefixes left untrained (e.g. "
        "features,trunk,asymmetric,symmetric: only GridNet and context)",
    )
    parser.add_argument(
        "--variant", choices=VARIANTS, default=None, help="ablation: override the config's variant"
    )
    parser.add_argument("--validate-every", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-amp", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--time-budget", type=float, default=None, help="seconds")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model_config = get_interpolator_config(args.config)
    if args.variant:
        if not isinstance(model_config, InterpolatorConfig):
            parser.error("--variant applies to the facial frame interpolator only")
        model_config = model_config.replace(
            name=f"{model_config.name}-{args.variant}", variant=args.variant
        )
    train_interpolator_from_folder(
        model_config,
        InterpolatorTrainConfig(
            stage=args.stage,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            crop=args.crop,
            motion_candidates=args.motion_candidates,
            gaps=[int(g) for g in args.gaps.split(",")],
            smoothness_weight=args.smoothness,
            init_from=args.init_from,
            teacher=args.teacher,
            teacher_weight=args.teacher_weight,
            validate_every=args.validate_every,
            freeze=[p for p in args.freeze.split(",") if p],
            device=args.device,
            amp=not args.no_amp,
        ),
        Path(args.data),
        Path(args.split),
        Path(args.cache),
        Path(args.run_dir),
        Path(args.export) if args.export else None,
        time_budget_s=args.time_budget,
    )


if __name__ == "__main__":
    main()
