"""Facial frame interpolator: warping operators, network shapes and wiring, configs, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO_ROOT, talking_head_frames

from fomcodec.errors import ModelError
from fomcodec.nets.interpolator import (
    FacialFrameInterpolator,
    InterpolatorConfig,
    PointwiseToNCHW,
    _up2,
)
from fomcodec.nets.warping import local_filter, tap_offsets, wamv, wsmv, wsmv_prewarp
from fomcodec.training.interpolation import (
    InterpolatorTrainConfig,
    InterpolatorTrainer,
    TripletSampler,
    charbonnier,
    smoothness,
    validation_triplets,
)
from fomcodec.zoo import get_interpolator_config, load_interpolator

CONFIG_DIR = REPO_ROOT / "models" / "interpolators"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny() -> InterpolatorConfig:
    return get_interpolator_config("ffi-tiny")


def _one_hot_centre(batch: int, kernel_size: int, height: int, width: int) -> torch.Tensor:
    weights = torch.zeros(batch, kernel_size * kernel_size, height, width)
    weights[:, kernel_size * kernel_size // 2] = 1
    return weights


def _naive_wamv(
    image: np.ndarray,
    weights: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    kernel_size: int,
    dilation: int,
) -> np.ndarray:
    """Direct per-pixel evaluation of the paper's formula (bilinear, border clamp)."""
    channels, height, width = image.shape
    rows, cols = tap_offsets(kernel_size, dilation)

    def sample(y: float, x: float) -> np.ndarray:
        y = min(max(y, 0.0), height - 1.0)
        x = min(max(x, 0.0), width - 1.0)
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
        fy, fx = y - y0, x - x0
        return (
            (1 - fy) * (1 - fx) * image[:, y0, x0]
            + (1 - fy) * fx * image[:, y0, x1]
            + fy * (1 - fx) * image[:, y1, x0]
            + fy * fx * image[:, y1, x1]
        )

    out = np.zeros_like(image)
    for i in range(height):
        for j in range(width):
            for n, (dy, dx) in enumerate(zip(rows, cols, strict=True)):
                out[:, i, j] += weights[n, i, j] * sample(
                    i + dy + alpha[n, i, j], j + dx + beta[n, i, j]
                )
    return out


# ------------------------------------------------------------------------------------ warping


@pytest.mark.parametrize(("kernel_size", "dilation"), [(1, 1), (3, 1), (5, 1), (3, 2)])
def test_wsmv_zero_motion_centred_one_hot_is_identity(kernel_size: int, dilation: int) -> None:
    image = torch.rand(2, 4, 9, 11)
    weights = _one_hot_centre(2, kernel_size, 9, 11)
    zero = torch.zeros(2, 1, 9, 11)
    out = wsmv(image, weights, zero, zero, kernel_size, dilation)
    torch.testing.assert_close(out, image, atol=1e-6, rtol=0)
    out = wsmv_prewarp(image, weights, zero, zero, kernel_size, dilation)
    torch.testing.assert_close(out, image, atol=1e-6, rtol=0)


def test_wamv_single_tap_is_bilinear_sampling() -> None:
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 10, 13, generator=gen)
    alpha = 3 * torch.randn(2, 1, 10, 13, generator=gen)  # rows
    beta = 3 * torch.randn(2, 1, 10, 13, generator=gen)  # columns
    out = wamv(image, torch.ones(2, 1, 10, 13), alpha, beta, kernel_size=1)
    i = torch.arange(10.0).view(1, 10, 1)
    j = torch.arange(13.0).view(1, 1, 13)
    grid = torch.stack(((j + beta[:, 0]) * 2 / 12 - 1, (i + alpha[:, 0]) * 2 / 9 - 1), dim=-1)
    expected = F.grid_sample(
        image, grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_alpha_is_vertical_and_beta_horizontal() -> None:
    image = torch.arange(30.0).view(1, 1, 5, 6)
    one_hot = _one_hot_centre(1, 3, 5, 6)
    ones, zeros = torch.ones(1, 9, 5, 6), torch.zeros(1, 9, 5, 6)
    down = wamv(image, one_hot, ones, zeros, 3)  # I(i + 1, j)
    right = wamv(image, one_hot, zeros, ones, 3)  # I(i, j + 1)
    torch.testing.assert_close(down[0, 0, :-1], image[0, 0, 1:])
    torch.testing.assert_close(right[0, 0, :, :-1], image[0, 0, :, 1:])
    torch.testing.assert_close(down[0, 0, -1], image[0, 0, -1])  # border: edge repeated


@pytest.mark.parametrize(
    ("kernel_size", "dilation", "taps_per_call"), [(3, 1, None), (3, 2, 1), (5, 1, 25)]
)
def test_wamv_matches_the_formula(
    kernel_size: int, dilation: int, taps_per_call: int | None
) -> None:
    gen = torch.Generator().manual_seed(1)
    taps = kernel_size * kernel_size
    image = torch.rand(1, 2, 6, 7, generator=gen, dtype=torch.float64).float()
    weights = torch.softmax(torch.randn(1, taps, 6, 7, generator=gen), dim=1)
    alpha = 2 * torch.randn(1, taps, 6, 7, generator=gen)
    beta = 2 * torch.randn(1, taps, 6, 7, generator=gen)
    out = wamv(image, weights, alpha, beta, kernel_size, dilation, taps_per_call=taps_per_call)
    expected = _naive_wamv(
        image[0].double().numpy(),
        weights[0].double().numpy(),
        alpha[0].double().numpy(),
        beta[0].double().numpy(),
        kernel_size,
        dilation,
    )
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-5)


def test_wsmv_is_wamv_with_one_vector_for_all_taps() -> None:
    gen = torch.Generator().manual_seed(2)
    image = torch.rand(2, 3, 8, 8, generator=gen)
    weights = torch.softmax(torch.randn(2, 9, 8, 8, generator=gen), dim=1)
    alpha = torch.randn(2, 1, 8, 8, generator=gen)
    beta = torch.randn(2, 1, 8, 8, generator=gen)
    torch.testing.assert_close(
        wsmv(image, weights, alpha, beta, 3),
        wamv(
            image,
            weights,
            alpha.expand(2, 9, 8, 8).contiguous(),
            beta.expand(2, 9, 8, 8).contiguous(),
            3,
        ),
    )
    # constant motion: warping then filtering is the same operator
    const_a, const_b = torch.full_like(alpha, 0.3), torch.full_like(beta, -1.7)
    torch.testing.assert_close(
        wsmv_prewarp(
            image[..., 2:-2, 2:-2].contiguous(),
            weights[..., 2:-2, 2:-2].contiguous(),
            const_a[..., 2:-2, 2:-2],
            const_b[..., 2:-2, 2:-2],
            3,
        )[..., 2:-2, 2:-2],
        wsmv(
            image[..., 2:-2, 2:-2].contiguous(),
            weights[..., 2:-2, 2:-2].contiguous(),
            const_a[..., 2:-2, 2:-2],
            const_b[..., 2:-2, 2:-2],
            3,
        )[..., 2:-2, 2:-2],
        atol=1e-5,
        rtol=0,
    )


def test_warps_are_differentiable() -> None:
    gen = torch.Generator().manual_seed(3)
    image = torch.rand(1, 2, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    weights = torch.softmax(torch.randn(1, 9, 5, 6, generator=gen), 1).double().requires_grad_()
    alpha = (0.3 * torch.randn(1, 9, 5, 6, generator=gen)).double().requires_grad_()
    beta = (0.3 * torch.randn(1, 9, 5, 6, generator=gen)).double().requires_grad_()
    out = wamv(image, weights, alpha, beta, 3)
    assert out.dtype == torch.float32
    out.square().sum().backward()
    for tensor in (image, weights, alpha, beta):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all()
        assert tensor.grad.abs().sum() > 0


def test_local_filter_and_fast_helpers() -> None:
    image = torch.rand(1, 2, 6, 7)
    weights = torch.softmax(torch.randn(1, 9, 6, 7), 1)
    zero = torch.zeros(1, 1, 6, 7)
    torch.testing.assert_close(local_filter(image, weights, 3), wsmv(image, weights, zero, zero, 3))
    x = torch.randn(2, 5, 7, 9)
    with torch.no_grad():
        torch.testing.assert_close(
            _up2(x), F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        )
        conv = PointwiseToNCHW(5, 4)
        out = conv(x.contiguous(memory_format=torch.channels_last))
        assert out.is_contiguous()
        torch.testing.assert_close(out, F.conv2d(x, conv.weight, conv.bias))


# ------------------------------------------------------------------------------------ network


@pytest.mark.parametrize("name", ["ffi-tiny", "ffi-fast"])
def test_shapes_in_every_mode(name: str) -> None:
    config = get_interpolator_config(name)
    model = FacialFrameInterpolator(config).eval()
    frame0, frame1 = torch.rand(2, 3, 36, 44), torch.rand(2, 3, 36, 44)  # padded inside
    with torch.no_grad():
        for mode, candidates in (("full", 4), ("asymmetric", 2), ("symmetric", 2)):
            out = model(frame0, frame1, mode=mode, return_motion=True)
            assert out["frame"].shape == (2, 3, 36, 44)
            assert out["base"].shape == (2, 3, 36, 44)
            assert out["occlusion"].shape == (2, 1, 36, 44)
            assert len(out["motion"]) == candidates
            assert all(m.shape == (2, 2, 36, 44) for m in out["motion"])
            keys = {"asym0", "asym1", "sym0", "sym1"} & out.keys()
            assert len(keys) == candidates
            assert ("residual" in out) == (mode == "full")
        assert model.interpolate(frame0, frame1).shape == (2, 3, 36, 44)


@pytest.mark.parametrize("variant", ["proposed-s", "proposed-as"])
def test_ablation_variants(tiny: InterpolatorConfig, variant: str) -> None:
    model = FacialFrameInterpolator(tiny.replace(variant=variant)).eval()
    frame0, frame1 = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = model(frame0, frame1)
        occlusion = out["occlusion"]
        if variant == "proposed-as":
            assert occlusion.shape == (1, 4, 32, 32)
            torch.testing.assert_close(occlusion.sum(1), torch.ones(1, 32, 32))
            expected = sum(
                occlusion[:, i : i + 1] * out[k]
                for i, k in enumerate(("asym0", "asym1", "sym0", "sym1"))
            )
        else:
            expected = occlusion * out["sym0"] + (1 - occlusion) * out["sym1"]
        torch.testing.assert_close(out["base"], expected)
        torch.testing.assert_close(out["frame"], out["base"] + out["residual"])
        assert model(frame0, frame1, mode="asymmetric")["frame"].shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    ("name", "batch", "symmetric_warp"),
    [
        ("ffi-tiny", 2, None),
        ("ffi-fast", 1, None),
        ("ffi-fast", 2, None),
        ("ffi-fast", 2, "exact"),
        ("ffi-tiny", 1, "prewarp"),
    ],
)
def test_candidates_are_the_blocks_warps(name: str, batch: int, symmetric_warp: str | None) -> None:
    """The network's candidates are WAMV / WSMV of each frame with the motion it reports
    (catches frame / batch mix-ups in the paired warping), blended by the occlusion map; the
    symmetric ones by the WSMV the config names (exact or prewarp)."""
    config = get_interpolator_config(name)
    if symmetric_warp is not None:
        config = config.replace(symmetric_warp=symmetric_warp)
    model = FacialFrameInterpolator(config).eval()
    symmetric = {"exact": wsmv, "prewarp": wsmv_prewarp}[config.symmetric_warp]
    gen = torch.Generator().manual_seed(4)
    frame0 = torch.rand(batch, 3, 32, 32, generator=gen)
    frame1 = torch.rand(batch, 3, 32, 32, generator=gen)
    k = model.config.kernel_size
    with torch.no_grad():
        out = model(frame0, frame1)
        a, s = out["asymmetric_motion"], out["symmetric_motion"]
        for t, frame in ((0, frame0), (1, frame1)):
            torch.testing.assert_close(
                out[f"asym{t}"],
                wamv(
                    frame,
                    a[f"weight{t}"].contiguous(),
                    a[f"alpha{t}"].contiguous(),
                    a[f"beta{t}"].contiguous(),
                    k,
                ),
                atol=1e-5,
                rtol=0,
            )
            sign = -1 if t else 1
            torch.testing.assert_close(
                out[f"sym{t}"],
                symmetric(
                    frame, s[f"weight{t}"].contiguous(), sign * s["alpha"], sign * s["beta"], k
                ),
                atol=1e-5,
                rtol=0,
            )
        occ = out["occlusion"]
        torch.testing.assert_close(out["base"], occ * out["asym0"] + (1 - occ) * out["asym1"])
        assert torch.allclose(a["weight0"].sum(1), torch.ones(1), atol=1e-5)


def test_config_yaml_round_trip(tmp_path) -> None:
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        config = get_interpolator_config(path)
        assert config.name == path.stem
        copy = tmp_path / path.name
        config.to_yaml(copy)
        assert get_interpolator_config(copy) == config
    assert {p.stem for p in CONFIG_DIR.glob("*.yaml")} >= {
        "ffi-paper",
        "ffi-fast",
        "ffi-tiny",
        "ffi-flow",
    }
    with pytest.raises(ModelError, match="unknown"):
        InterpolatorConfig.from_dict({"interpolator": {"kernel_sise": 3}})
    with pytest.raises(ModelError, match="odd"):
        InterpolatorConfig(kernel_size=4)
    with pytest.raises(ModelError, match="unknown interpolator"):
        get_interpolator_config("no-such-interpolator")


# ----------------------------------------------------------------------------------- training


def _clips() -> list[np.ndarray]:
    frames = talking_head_frames(12, size=(32, 32))
    return [frames[:8], frames[6:]]


def test_triplet_sampler_and_losses() -> None:
    clip = np.broadcast_to(np.arange(10, dtype=np.uint8)[:, None, None, None], (10, 8, 8, 3)).copy()
    sampler = TripletSampler([clip], seed=0, gaps=[1, 2], crop=4)
    for _ in range(10):
        frame0, middle, frame1 = sampler.sample(3)
        assert frame0.shape == middle.shape == frame1.shape == (3, 3, 4, 4)
        # the middle frame is halfway in time, whichever way round the triplet runs
        torch.testing.assert_close(2 * middle, frame0 + frame1)
        assert ((frame1 - frame0).abs() * 255).round().max() in (2, 4)
    assert len(validation_triplets([clip, clip[:2]], per_clip=4)) == 4
    x = torch.rand(2, 3, 5, 5)
    torch.testing.assert_close(charbonnier(x, x), torch.tensor(1e-3))
    assert smoothness([torch.ones(1, 2, 5, 5)]) == 0
    assert smoothness([torch.arange(5.0).expand(1, 2, 5, 5)]) == 1


def test_motion_candidates_prefer_the_moving_crop() -> None:
    clip = np.zeros((5, 64, 64, 3), np.uint8)
    clip[:, 40:, 40:] = (np.arange(5, dtype=np.uint8) * 50)[:, None, None, None]

    def moving_share(candidates: int) -> float:
        sampler = TripletSampler([clip], seed=1, crop=16, motion_candidates=candidates)
        frames = [sampler.sample(1) for _ in range(40)]
        return float(np.mean([bool((f0 != f1).any()) for f0, _, f1 in frames]))

    assert moving_share(1) < 0.5 < 0.8 <= moving_share(12)


def test_training_lowers_the_loss_resumes_and_exports(tiny: InterpolatorConfig, tmp_path) -> None:
    clips = _clips()
    config = InterpolatorTrainConfig(
        stage="asymmetric",
        steps=40,
        batch_size=4,
        lr=3e-3,
        amp=False,
        log_every=20,
        checkpoint_every=20,
        validate_every=40,
        validation_per_clip=2,
        device="cpu",
    )
    trainer = InterpolatorTrainer(tiny, config, tmp_path, clips, clips)
    batch = TripletSampler(clips, seed=123).sample(4)

    def loss() -> float:
        with torch.no_grad():
            return float(sum(trainer.losses(*batch).values()))

    before = loss()
    metrics = trainer.run(export_path=tmp_path / "ffi.safetensors")
    after = loss()
    assert after < 0.8 * before, (before, after)
    assert metrics is not None and metrics["triplets"] == 4
    assert np.isfinite(metrics["psnr"]) and np.isfinite(metrics["psnr_average_baseline"])
    assert (tmp_path / "checkpoint-asymmetric.pt").exists()
    assert (tmp_path / "log.jsonl").read_text().count("\n") >= 3

    # the next stage starts from the previous one's weights; a rerun resumes
    finetune = InterpolatorTrainer(
        tiny,
        InterpolatorTrainConfig(
            stage="finetune", steps=2, batch_size=2, amp=False, validate_every=100, device="cpu"
        ),
        tmp_path,
        clips,
        clips,
    )
    assert finetune.step == 0 and finetune.config.smoothness == 0
    torch.testing.assert_close(
        finetune.model.features.encoders[0][0].weight, trainer.model.features.encoders[0][0].weight
    )
    finetune.run()
    resumed = InterpolatorTrainer(
        tiny,
        InterpolatorTrainConfig(stage="finetune", steps=2, amp=False, device="cpu"),
        tmp_path,
        clips,
        clips,
    )
    assert resumed.step == 2

    loaded = load_interpolator(tmp_path / "ffi.safetensors")
    assert loaded.config == tiny
    for name, value in loaded.state_dict().items():
        torch.testing.assert_close(value, trainer.model.state_dict()[name].half().float())


def test_frozen_parameters_stay_put(tiny: InterpolatorConfig, tmp_path) -> None:
    clips = _clips()
    config = InterpolatorTrainConfig(
        stage="finetune",
        steps=3,
        batch_size=2,
        lr=1e-2,
        amp=False,
        validate_every=100,
        device="cpu",
        freeze=["features", "trunk", "asymmetric", "symmetric"],
    )
    trainer = InterpolatorTrainer(tiny, config, tmp_path, clips, clips)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.run()
    moved = {
        n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])
    }
    assert moved and all(n.startswith(("synthesis", "context")) for n in moved), moved


def test_channels_last_and_bf16_paths_agree() -> None:
    model = FacialFrameInterpolator(get_interpolator_config("ffi-fast")).eval()
    frame0, frame1 = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        reference = model(frame0, frame1)["frame"]
        model.to(memory_format=torch.channels_last)
        torch.testing.assert_close(model(frame0, frame1)["frame"], reference, atol=1e-4, rtol=0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(frame0, frame1)["frame"]
    assert low.dtype == torch.float32
    assert (low - reference).abs().max() < 0.05
