"""Training the learned base-layer fuser (:class:`~fomcodec.nets.fuser.BaseLayerFuser`).

::

    clip frames (256x256, cached) --one random base setting per clip: size, CRF, frame-rate
      divisor, source quality--> AV1 base layer, coded and decoded as the codec does
      --> every 4th frame: (base, warped source, warped low source, original) uint8 samples
      (a source image every 100 frames, as keyframes; cached as one .npy, never committed)
    samples --random 128x128 crops, horizontal flips--> fuser --L1 against the original-->
      Adam, one-cycle learning rate; validation PSNR on the held-out clips' samples, the best
      weights exported as safetensors

The samples are made with the codec's own code (:mod:`fomcodec.codec.base_video`,
:mod:`fomcodec.codec.fusion`), so the fuser learns on what the decoder will give it.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fomcodec.codec.base_layer import BaseLayerSettings
from fomcodec.codec.base_video import BaseLayerWriter
from fomcodec.codec.frame_interpolation import DEFAULT_INTERPOLATOR, Synthesize
from fomcodec.codec.fusion import SourceWarp, decoded_base_frames, to_uint8
from fomcodec.codec.image_codec import decode_image, encode_image
from fomcodec.nets.fuser import BaseLayerFuser, FuserConfig
from fomcodec.tensors import image_psnr
from fomcodec.training.dataset import build_frame_cache, load_split
from fomcodec.training.loop import TrainingLoop

#: Base settings drawn per clip (values repeat to weight them); the fuser sees them all.
#: The shipped fuse-small's mix (one with a quarter frame rate and more 128 px did no better,
#: docs/training.md).
SIZES = (48, 64, 64, 96, 128)
CRFS = (40, 60)
FPS_DIVISORS = (1, 2)
QUALITIES = (10, 15, 20, 30)
KEYFRAME_EVERY = 100
SAMPLE_EVERY = 4
#: Channels of a sample: base, warped source, warped low source, original (RGB each).
SAMPLE_CHANNELS = 12


def clip_samples(
    frames: np.ndarray,
    rng: random.Random,
    synthesize: Synthesize | None = None,
    fps_divisors: tuple[int, ...] = FPS_DIVISORS,
    flow_scale: int = 1,
) -> np.ndarray:
    """(M, H, W, 12) uint8 samples of one clip's (N, H, W, 3) frames, with one random base
    setting for the whole clip; the frames the base layer drops are made as the decoder makes
    them (``synthesize``: its frame interpolator; None: blended), the source warped by flow
    measured at 1/``flow_scale`` of the size (:class:`SourceWarp`)."""
    size = frames.shape[1]
    settings = BaseLayerSettings(
        rng.choice(SIZES), rng.randint(*CRFS), rng.choice(fps_divisors), fuser="detail"
    )
    quality = rng.choice(QUALITIES)
    writer = BaseLayerWriter(settings, Fraction(25), size)
    for frame in frames:
        writer.add(frame)
    bases = decoded_base_frames(writer.finish(), len(frames), size, size, synthesize)
    samples, warp = [], None
    for index, base in enumerate(bases):
        if index % KEYFRAME_EVERY == 0:
            source = decode_image(encode_image(frames[index], quality=quality))
            warp = SourceWarp(source, settings.size, settings.size, flow_scale)
        if index % SAMPLE_EVERY == 0 and warp is not None:
            warped, warped_low = warp.warp(base)
            parts = [to_uint8(base), to_uint8(warped), to_uint8(warped_low), frames[index]]
            samples.append(np.concatenate(parts, -1))
    return np.stack(samples)


def sample_settings_tag(fps_divisors: tuple[int, ...] = FPS_DIVISORS, flow_scale: int = 1) -> str:
    """A short hash of the settings samples are drawn from, so cached samples made with
    other settings are not reused."""
    import hashlib

    text = repr((SIZES, CRFS, fps_divisors, QUALITIES, KEYFRAME_EVERY, SAMPLE_EVERY))
    text += f" dropped frames by {DEFAULT_INTERPOLATOR}"
    if flow_scale != 1:  # the tag of samples made before the setting existed is unchanged
        text += f" flow at 1/{flow_scale}"
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def build_samples(
    clip_arrays: list[np.ndarray],
    path: Path,
    seed: int = 0,
    fps_divisors: tuple[int, ...] = FPS_DIVISORS,
    flow_scale: int = 1,
) -> np.ndarray:
    """Samples of every clip (dropped base frames made by the default interpolator, as the
    decoder makes them; flow at 1/``flow_scale``), made once into ``path`` (.npy) and
    reused."""
    if not path.exists():
        from fomcodec.codec.frame_interpolation import MiddleFrameSynthesizer

        rng = random.Random(seed)
        synthesize = MiddleFrameSynthesizer(DEFAULT_INTERPOLATOR)
        samples = np.concatenate(
            [
                clip_samples(np.asarray(c), rng, synthesize, fps_divisors, flow_scale)
                for c in clip_arrays
            ]
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, samples)
        tmp.replace(path)
    return np.load(path, mmap_mode="r")


def _split(batch: np.ndarray) -> list[torch.Tensor]:
    tensor = torch.from_numpy(np.array(batch)).permute(0, 3, 1, 2).float() / 255
    return [tensor[:, i : i + 3] for i in range(0, SAMPLE_CHANNELS, 3)]


def _psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR of the prediction as the decoder writes it: clipped and rounded to 8 bits."""
    return image_psnr(torch.round(prediction.clamp(0, 1) * 255) / 255, target)


@torch.no_grad()
def evaluate(model: BaseLayerFuser, samples: np.ndarray, batch: int = 16) -> tuple[float, float]:
    """Mean PSNR (dB) of the ``detail`` fuser and of ``model`` on ``samples``."""
    model.eval()
    detail, learned = [], []
    for i in range(0, len(samples), batch):
        base, warped, warped_low, target = _split(samples[i : i + batch])
        detail.append(_psnr(base + warped - warped_low, target))
        learned.append(_psnr(model(base, warped, warped_low), target))
    model.train()
    return float(torch.cat(detail).mean()), float(torch.cat(learned).mean())


@dataclass
class FuserTrainConfig:
    steps: int = 3000
    batch_size: int = 8
    crop: int = 128
    lr: float = 2e-3
    log_every: int = 50
    validate_every: int = 250
    checkpoint_every: int = 250
    seed: int = 0


class SampleCropper:
    """Random batches of ``crop`` x ``crop`` crops (one position per batch) of random
    samples, flipped horizontally half of the time."""

    def __init__(self, samples: np.ndarray, crop: int, seed: int = 0) -> None:
        self.samples = samples
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def sample(self, batch: int) -> list[torch.Tensor]:
        """(base, warped source, warped low source, original), each (B, 3, crop, crop)."""
        height, width = self.samples.shape[1:3]
        index = np.sort(self.rng.choice(len(self.samples), batch, replace=False))
        y = self.rng.integers(0, height - self.crop + 1)
        x = self.rng.integers(0, width - self.crop + 1)
        crops = self.samples[index, y : y + self.crop, x : x + self.crop]
        if self.rng.random() < 0.5:
            crops = crops[:, :, ::-1]
        return _split(crops)


class FuserTrainer(TrainingLoop):
    """Trains the fuser on the shared loop (L1 against the original, Adam, one-cycle
    learning rate); ``run_dir`` keeps ``checkpoint.pt`` and ``log.jsonl``; validation PSNR
    on ``validation`` samples, next to the ``detail`` fuser's."""

    log_tag = "fuser"

    def __init__(
        self,
        config: FuserConfig,
        train: FuserTrainConfig,
        samples: np.ndarray,
        validation: np.ndarray,
        run_dir: Path,
    ) -> None:
        super().__init__(run_dir)
        self.config = train
        torch.manual_seed(train.seed)
        self.model = BaseLayerFuser(config).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), train.lr / 25)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, train.lr, total_steps=train.steps, pct_start=0.05
        )
        self.parts = {"schedule": self.schedule}
        self.sampler = SampleCropper(samples, train.crop, train.seed)
        self.validation = validation
        self.resume()

    def train_step(self) -> dict[str, float]:
        base, warped, warped_low, target = self.sampler.sample(self.config.batch_size)
        loss = F.l1_loss(self.model(base, warped, warped_low), target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        self.step += 1
        return {"l1": loss.item()}

    def validate(self) -> dict[str, float] | None:
        if not len(self.validation):
            return None
        detail, learned = evaluate(self.model, self.validation)
        return {"psnr": learned, "psnr_detail": detail}

    def export(self, path: Path, metrics: dict[str, float]) -> None:
        from fomcodec.zoo import save_fuser

        save_fuser(self.model, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the learned base-layer fuser.")
    parser.add_argument("--config", default="models/fusers/fuse-small.yaml")
    parser.add_argument("--data", default="../shared/data/clips", help="folder of raw clips")
    parser.add_argument("--split", default="models/splits/shared-data-v1.json")
    parser.add_argument("--cache", default="data/cache", help="frames and samples (never commit)")
    parser.add_argument("--frames", type=int, default=200, help="frames per clip (from the start)")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--export", required=True, help="best weights (.safetensors)")
    parser.add_argument("--steps", type=int, default=FuserTrainConfig.steps)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--lr", type=float, default=FuserTrainConfig.lr, help="peak of the one-cycle schedule"
    )
    parser.add_argument(
        "--fps-divisors",
        default=",".join(map(str, FPS_DIVISORS)),
        help="base frame-rate divisors drawn per clip",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    split = load_split(Path(args.split))
    cache = Path(args.cache)
    arrays = {}
    for part in ("train", "validation"):
        clips = [Path(args.data) / name for name in split[part]]
        paths = build_frame_cache(clips, cache)
        arrays[part] = [np.load(p, mmap_mode="r")[: args.frames] for p in paths]
    divisors = tuple(int(d) for d in args.fps_divisors.split(","))
    config = FuserConfig.from_yaml(args.config)
    tag = f"{args.frames}-{sample_settings_tag(divisors, config.flow_scale)}"
    samples = build_samples(
        arrays["train"], cache / f"fuser-train-{tag}.npy", 0, divisors, config.flow_scale
    )
    validation = build_samples(
        arrays["validation"], cache / f"fuser-val-{tag}.npy", 1, divisors, config.flow_scale
    )
    trainer = FuserTrainer(
        config,
        FuserTrainConfig(steps=args.steps, lr=args.lr),
        samples,
        np.asarray(validation),
        Path(args.run_dir),
    )
    trainer.run(export_path=Path(args.export))


if __name__ == "__main__":
    main()
