"""FOMM training loop: reconstruction + equivariance losses, resumable checkpoints, validation
on held-out people, export of the best weights as safetensors."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fomcodec.codec.motion import apply_relative_motion, relative_motion
from fomcodec.nets.config import ModelConfig
from fomcodec.nets.discriminator import (
    DiscriminatorConfig,
    MultiScaleDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from fomcodec.nets.fomm import FOMM
from fomcodec.runtime import autocast, bf16_supported, resolve_device
from fomcodec.tensors import frames_to_images, image_psnr
from fomcodec.training.dataset import FramePairSampler, build_frame_cache, load_split
from fomcodec.training.flow_teacher import dis_flow_grid, flow_loss
from fomcodec.training.loop import TrainingLoop
from fomcodec.training.losses import (
    ImagePyramid,
    equivariance_losses,
    ms_ssim_loss,
    pyramid_l1,
)
from fomcodec.training.transforms import RandomTPS
from fomcodec.zoo import load_weights_into, save_weights


@dataclass
class TrainConfig:
    """Hyper-parameters (FOMM's vox-256 recipe where it applies)."""

    steps: int = 100_000
    batch_size: int = 4
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    scales: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.25, 0.125])
    weight_l1: float = 10.0
    weight_ms_ssim: float = 5.0
    weight_equivariance_value: float = 10.0
    weight_equivariance_jacobian: float = 10.0
    weight_adversarial: float = 0.0  # FOMM vox-adv: 1 (LSGAN, multi-scale discriminator)
    weight_feature_matching: float = 0.0  # FOMM vox-adv: 10 (per discriminator block)
    weight_warp: float = 0.0  # L1 of the source warped by the dense motion
    weight_flow: float = 0.0  # L1 of the dense motion against DIS flow (flow_teacher)
    discriminator_scales: list[float] = field(default_factory=lambda: [1.0])
    discriminator_block_expansion: int = 32
    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5
    bf16: bool = True
    log_every: int = 10
    checkpoint_every: int = 200
    validate_every: int = 500
    validation_frames: int = 24
    ema_decay: float = 0.0  # > 0: validate and export an exponential moving average
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present, else the CPU


@torch.no_grad()
def validate(
    model: FOMM,
    clips: list[np.ndarray],
    frames_per_clip: int,
    bf16: bool,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Self-reconstruction from each clip's first frame (the codec's use): mean PSNR of the
    generated frames (frame 0, the source itself, left out), of the source warped by the dense
    motion alone, and of the repeat-the-source baseline."""
    device = device or torch.device("cpu")
    model.eval()
    ours, warped, baseline = [], [], []
    for frames in clips:
        index = np.linspace(0, len(frames) - 1, min(frames_per_clip + 1, len(frames))).astype(int)
        video = frames_to_images(frames[index], device)
        source = video[:1]
        kp_source = model.kp_detector(source)
        kp_driving = model.kp_detector(video)
        kp = apply_relative_motion(relative_motion(kp_driving, kp_driving[0]), kp_source)
        with autocast(device, bf16):
            gen = model.generator.decode(
                source, model.generator.encode_source(source), kp, kp_source, with_deformed=True
            )
        ours.append(image_psnr(gen["prediction"][1:], video[1:]).mean().item())
        warped.append(image_psnr(gen["deformed"][1:], video[1:]).mean().item())
        baseline.append(image_psnr(source.expand_as(video[1:]), video[1:]).mean().item())
    model.train()
    return {
        "psnr": float(np.mean(ours)),
        "psnr_warp": float(np.mean(warped)),
        "psnr_repeat_source": float(np.mean(baseline)),
    }


class Trainer(TrainingLoop):
    """Trains a FOMM model on the shared loop; ``run_dir`` keeps ``checkpoint.pt`` and
    ``log.jsonl``. A resumed run takes the learning rate of its config."""

    log_tag = "fomm"

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        run_dir: Path,
        train_clips: list[np.ndarray],
        validation_clips: list[np.ndarray],
        init_weights: Path | None = None,
    ) -> None:
        super().__init__(run_dir)
        self.config = train_config
        torch.manual_seed(train_config.seed)
        self.device = resolve_device(train_config.device)
        self.bf16 = train_config.bf16 and bf16_supported(self.device)
        self.model = FOMM(model_config).to(self.device).train()
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=train_config.lr, betas=train_config.betas
        )
        self.pyramid = ImagePyramid(train_config.scales).to(self.device)
        self.sampler = FramePairSampler(train_clips, seed=train_config.seed)
        self.validation_clips = validation_clips
        self.discriminator: MultiScaleDiscriminator | None = None
        if train_config.weight_adversarial or train_config.weight_feature_matching:
            self.discriminator = MultiScaleDiscriminator(
                DiscriminatorConfig(
                    scales=list(train_config.discriminator_scales),
                    block_expansion=train_config.discriminator_block_expansion,
                )
            ).to(self.device)
            self.discriminator_pyramid = ImagePyramid(list(train_config.discriminator_scales)).to(
                self.device
            )
            self.optimizer_d = torch.optim.Adam(
                self.discriminator.parameters(), lr=train_config.lr, betas=train_config.betas
            )
            self.parts = {"discriminator": self.discriminator, "optimizer_d": self.optimizer_d}
        self.ema: AveragedModel | None = None
        if train_config.ema_decay:
            # the average starts as a copy of the weights at its first update (after a resume)
            self.ema = AveragedModel(
                self.model,
                multi_avg_fn=get_ema_multi_avg_fn(train_config.ema_decay),
                use_buffers=True,
            )
            self.parts["ema"] = self.ema
        if not self.resume() and init_weights is not None:
            new = load_weights_into(
                self.model, load_file(str(init_weights)), str(init_weights), partial=True
            )
            self.log(
                f"initialised from {init_weights}"
                + (f" ({len(new)} entries new to this architecture)" if new else "")
            )

    def on_resume(self) -> None:
        optimizers = [self.optimizer] + ([self.optimizer_d] if self.discriminator else [])
        for group in (g for optimizer in optimizers for g in optimizer.param_groups):
            group["lr"] = self.config.lr

    @property
    def evaluated_model(self) -> FOMM:
        """The weights that are validated and exported: the moving average when one is kept."""
        return self.model if self.ema is None else self.ema.module

    def describe(self) -> str:
        """One line: parameters, device and precision."""
        count = sum(p.numel() for p in self.model.parameters())
        return (
            f"{count / 1e6:.1f} M parameters on {self.device}"
            f"{' (generator in bf16)' if self.bf16 else ''}, step {self.step}"
        )

    def checkpoint_extra(self) -> dict[str, str]:
        return {"train_config": json.dumps(dataclasses.asdict(self.config))}

    def losses(self, source: torch.Tensor, driving: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted loss terms for one batch."""
        return self._losses(source, driving)[0]

    def _losses(
        self, source: torch.Tensor, driving: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        cfg = self.config
        kp_source = self.model.kp_detector(source)
        kp_driving = self.model.kp_detector(driving)
        with autocast(self.device, self.bf16):
            generated = self.model.generator(source, kp_driving, kp_source)
        prediction = generated["prediction"].float()
        terms = {"l1": cfg.weight_l1 * pyramid_l1(self.pyramid, prediction, driving)}
        if cfg.weight_warp:
            terms["warp"] = cfg.weight_warp * F.l1_loss(generated["deformed"].float(), driving)
        if cfg.weight_flow:
            teacher = dis_flow_grid(source, driving)
            terms["flow"] = cfg.weight_flow * flow_loss(generated["deformation"], teacher)
        if cfg.weight_ms_ssim:
            terms["ms_ssim"] = cfg.weight_ms_ssim * ms_ssim_loss(prediction, driving)
        transform = RandomTPS(driving.shape[0], cfg.sigma_affine, cfg.sigma_tps, cfg.points_tps)
        value, jacobian = equivariance_losses(
            self.model.kp_detector, driving, kp_driving, transform
        )
        terms["eq_value"] = cfg.weight_equivariance_value * value
        terms["eq_jacobian"] = cfg.weight_equivariance_jacobian * jacobian
        if self.discriminator is not None:
            fake = self.discriminator(self.discriminator_pyramid(prediction))
            if cfg.weight_adversarial:
                terms["gan"] = cfg.weight_adversarial * generator_adversarial_loss(fake)
            if cfg.weight_feature_matching:
                with torch.no_grad():
                    real = self.discriminator(self.discriminator_pyramid(driving))
                terms["feature_matching"] = cfg.weight_feature_matching * feature_matching_loss(
                    real, fake
                )
        return terms, prediction

    def _discriminator_step(self, driving: torch.Tensor, prediction: torch.Tensor) -> float:
        real = self.discriminator(self.discriminator_pyramid(driving))
        fake = self.discriminator(self.discriminator_pyramid(prediction.detach()))
        loss = discriminator_loss(real, fake)
        self.optimizer_d.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer_d.step()
        return loss.item()

    def train_step(self) -> dict[str, float]:
        source, driving = (
            t.to(self.device, non_blocking=True)
            for t in self.sampler.sample(self.config.batch_size)
        )
        terms, prediction = self._losses(source, driving)
        loss = sum(terms.values())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        record = {k: v.item() for k, v in terms.items()} | {"loss": loss.item()}
        if self.discriminator is not None:
            record["discriminator"] = self._discriminator_step(driving, prediction)
        self.step += 1
        return record

    def validate(self) -> dict[str, float] | None:
        if not self.validation_clips:
            return None
        return validate(
            self.evaluated_model,
            self.validation_clips,
            self.config.validation_frames,
            self.bf16,
            self.device,
        )

    def export(self, path: Path, metrics: dict[str, float]) -> None:
        save_weights(
            self.evaluated_model.eval(),
            path,
            extra_metadata={
                "step": str(self.step),
                "validation": json.dumps(metrics),
                "train_seconds": str(round(self.elapsed)),
                "ema_decay": str(self.config.ema_decay),
            },
        )
        self.evaluated_model.train()


def train_from_folder(
    model_config: ModelConfig,
    train_config: TrainConfig,
    clips_dir: Path,
    split_path: Path,
    cache_dir: Path,
    run_dir: Path,
    export_path: Path | None,
    time_budget_s: float | None = None,
    init_weights: Path | None = None,
) -> Trainer:
    """Cache the split's clips from ``clips_dir``, then train: resuming from ``run_dir``'s
    checkpoint if there is one, else starting from ``init_weights`` (safetensors) if given."""
    split = load_split(split_path)
    size = model_config.image_size
    train = [
        np.load(p, mmap_mode="r")
        for p in build_frame_cache([clips_dir / name for name in split["train"]], cache_dir, size)
    ]
    validation = [
        np.load(p)
        for p in build_frame_cache(
            [clips_dir / name for name in split["validation"]], cache_dir, size
        )
    ]
    trainer = Trainer(model_config, train_config, run_dir, train, validation, init_weights)
    trainer.run(export_path=export_path, time_budget_s=time_budget_s)
    return trainer
