"""Training: transforms, losses and a few optimisation steps on a tiny config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import talking_head_frames

from fomcodec.training.trainer import TrainConfig, Trainer
from fomcodec.training.transforms import RandomTPS
from fomcodec.zoo import get_config, load_model, save_weights


def test_random_tps_jacobian_matches_finite_differences() -> None:
    torch.manual_seed(0)
    transform = RandomTPS(2, sigma_affine=0.1, sigma_tps=0.01)
    points = torch.rand(2, 7, 2, dtype=torch.float64) * 1.6 - 0.8
    transform.theta = transform.theta.double()
    jacobian = transform.jacobian(points.clone())
    eps = 1e-6
    for axis in range(2):
        step = torch.zeros_like(points)
        step[..., axis] = eps
        numeric = (
            transform.warp_coordinates(points + step) - transform.warp_coordinates(points - step)
        ) / (2 * eps)
        torch.testing.assert_close(jacobian[..., axis], numeric, atol=1e-6, rtol=1e-5)


def test_identity_transform_leaves_frames_and_points_unchanged() -> None:
    transform = RandomTPS(1, sigma_affine=0.0, sigma_tps=0.0)
    points = torch.rand(1, 5, 2) * 2 - 1
    torch.testing.assert_close(transform.warp_coordinates(points), points)
    ramp = torch.linspace(0, 1, 32)
    frame = (ramp.view(1, 1, 1, 32) * ramp.view(1, 1, 32, 1)).expand(1, 3, 32, 32)
    # Smooth content: grid_sample (align_corners=False) on the corner-centred grid only
    # resamples by a fraction of a pixel.
    assert (transform.transform_frame(frame) - frame).abs().mean() < 0.02


def _trainer(tmp_path: Path, **options) -> Trainer:
    clip = talking_head_frames(4, (256, 256))
    config = TrainConfig(
        batch_size=2,
        log_every=100,
        validate_every=1000,
        checkpoint_every=1000,
        bf16=False,
        **options,
    )
    trainer = Trainer(get_config("tiny-256"), config, tmp_path / "run", [clip], [clip])
    trainer.sampler.augment = False
    return trainer


def test_a_few_steps_lower_the_reconstruction_loss(tmp_path: Path) -> None:
    torch.manual_seed(0)
    trainer = _trainer(tmp_path, lr=2e-3)
    source = torch.from_numpy(talking_head_frames(2, (256, 256))).permute(0, 3, 1, 2) / 255
    batch = (source[:1].repeat(2, 1, 1, 1), source[1:].repeat(2, 1, 1, 1))
    trainer.sampler.sample = lambda _: batch
    with torch.no_grad():
        before = trainer.losses(*batch)["l1"].item()
    for _ in range(12):
        trainer.train_step()
    with torch.no_grad():
        after = trainer.losses(*batch)["l1"].item()
    assert after < 0.9 * before


def test_runs_resume_from_checkpoints_and_start_from_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    trainer = _trainer(tmp_path)
    trainer.run(steps=2)
    resumed = _trainer(tmp_path, lr=5e-5)
    assert resumed.step == 2
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [5e-5]
    assert resumed.optimizer.state_dict()["state"]
    for key, value in trainer.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value)
    weights = save_weights(trainer.model.eval(), tmp_path / "w.safetensors", half=False)
    clip = talking_head_frames(3, (256, 256))
    fresh = Trainer(
        get_config("tiny-256"),
        TrainConfig(bf16=False),
        tmp_path / "other",
        [clip],
        [],
        init_weights=weights,
    )
    assert fresh.step == 0
    expected = load_model(weights).state_dict()
    for key, value in fresh.model.state_dict().items():
        assert np.allclose(value.numpy(), expected[key].numpy())


def test_adversarial_training_updates_and_resumes_the_discriminator(tmp_path: Path) -> None:
    torch.manual_seed(0)
    options = {
        "weight_adversarial": 1.0,
        "weight_feature_matching": 10.0,
        "discriminator_block_expansion": 8,
        "discriminator_scales": [1.0, 0.5],
    }
    trainer = _trainer(tmp_path, **options)
    assert list(trainer.discriminator.discs) == ["1", "0-5"]
    before = {k: v.clone() for k, v in trainer.discriminator.state_dict().items()}
    record = trainer.train_step()
    assert {"gan", "feature_matching", "discriminator"} <= set(record)
    assert all(np.isfinite(v) for v in record.values())
    changed = [
        k for k, v in trainer.discriminator.state_dict().items() if not torch.equal(v, before[k])
    ]
    assert any(k.endswith("weight_orig") for k in changed)
    trainer.save_checkpoint()
    resumed = _trainer(tmp_path, **options)
    for key, value in trainer.discriminator.state_dict().items():
        torch.testing.assert_close(resumed.discriminator.state_dict()[key], value)
    assert resumed.optimizer_d.state_dict()["state"]
    assert _trainer(tmp_path / "plain").discriminator is None


def test_validation_leaves_out_the_source_frame(tmp_path: Path) -> None:
    from fomcodec.tensors import image_psnr
    from fomcodec.training.trainer import validate

    frames = talking_head_frames(6, (256, 256))
    clip = np.concatenate([frames[:1], np.repeat(frames[5:6], 4, axis=0)])
    model = _trainer(tmp_path).model
    result = validate(model, [clip], frames_per_clip=4, bf16=False)
    a, b = (torch.from_numpy(f).permute(2, 0, 1).float()[None] / 255 for f in clip[:2])
    assert result["psnr_repeat_source"] == pytest.approx(image_psnr(a, b).item(), rel=1e-5)
    assert result["psnr_warp"] < 60
    assert result["psnr"] < 60


def test_moving_average_is_validated_exported_and_resumed(tmp_path: Path) -> None:
    torch.manual_seed(0)
    trainer = _trainer(tmp_path, lr=1e-3, ema_decay=0.5)
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.config.validate_every = 3
    trainer.run(steps=3, export_path=tmp_path / "best.safetensors")
    key = "generator.final.weight"
    model, average = trainer.model.state_dict()[key], trainer.evaluated_model.state_dict()[key]
    assert not torch.equal(average, model) and not torch.equal(average, start[key])
    # an exponential average of the weights lies between the first and the last weights
    assert (average - model).abs().mean() < (start[key] - model).abs().mean()
    exported = load_model(tmp_path / "best.safetensors").state_dict()[key]
    torch.testing.assert_close(exported, average.half().float())
    resumed = _trainer(tmp_path, lr=1e-3, ema_decay=0.5)
    torch.testing.assert_close(resumed.evaluated_model.state_dict()[key], average)
    plain = _trainer(tmp_path / "plain")
    assert plain.evaluated_model is plain.model
