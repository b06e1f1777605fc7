"""Motion priors that need no weights: the exact identity path, the skip/blend generator, the
DIS flow teacher, and encoder-side refinement through the frozen decoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import talking_head_frames

from fomcodec.codec.motion import relative_motion
from fomcodec.codec.quantization import QuantizationParams
from fomcodec.codec.refinement import fomm_render, reconstruction_error, refine_motion
from fomcodec.nets.blocks import make_coordinate_grid, resize_deformation
from fomcodec.training.flow_teacher import dis_flow_grid, flow_loss
from fomcodec.zoo import build_model, get_config


def _frames(count: int = 3) -> torch.Tensor:
    return torch.from_numpy(talking_head_frames(count, (256, 256))).permute(0, 3, 1, 2) / 255


@pytest.fixture(scope="module")
def warp_model():
    torch.manual_seed(0)
    model = build_model(get_config("tiny-warp-256"))
    with torch.no_grad():
        model.kp_detector.jacobian.weight.normal_(0, 1e-3)
    return model


def test_centred_identity_grid_samples_every_pixel_exactly() -> None:
    image = torch.rand(1, 3, 64, 48)
    grid = make_coordinate_grid(64, 48, centred=True).unsqueeze(0)
    torch.testing.assert_close(F.grid_sample(image, grid, align_corners=False), image)
    # FOMM's corner grid under align_corners=False zooms: what the centred grid fixes
    corner = make_coordinate_grid(64, 48).unsqueeze(0)
    assert (F.grid_sample(image, corner, align_corners=False) - image).abs().mean() > 0.05


def test_resized_identity_deformation_stays_the_identity() -> None:
    small = make_coordinate_grid(64, 64, centred=True).unsqueeze(0)
    full = resize_deformation(small, 256, 256, centred=True)
    torch.testing.assert_close(full, make_coordinate_grid(256, 256, centred=True).unsqueeze(0))
    shifted = resize_deformation(small + 0.1, 256, 256, centred=True)
    torch.testing.assert_close(shifted - full, torch.full_like(full, 0.1))


def test_identity_motion_warps_the_source_onto_itself(warp_model) -> None:
    source = _frames(1)
    with torch.no_grad():
        kp = warp_model.kp_detector(source)
        out = warp_model.generator(source, kp, kp)
    identity = make_coordinate_grid(64, 64, centred=True).unsqueeze(0)
    torch.testing.assert_close(out["deformation"], identity, atol=1e-6, rtol=0)
    torch.testing.assert_close(out["deformed"], source, atol=1e-5, rtol=0)


def test_pixel_blend_passes_the_warped_source_where_the_mask_is_one(warp_model) -> None:
    source = _frames(1)
    generator = warp_model.generator
    with torch.no_grad():
        kp = warp_model.kp_detector(source)
        bias = generator.blend.bias.clone()
        generator.blend.bias.fill_(50.0)  # sigmoid -> 1: the source passes through
        try:
            out = generator(source, kp, kp)
        finally:
            generator.blend.bias.copy_(bias)
    torch.testing.assert_close(out["prediction"], source, atol=1e-5, rtol=0)


def test_skip_merges_start_as_the_network_without_skips() -> None:
    torch.manual_seed(0)
    plain = build_model(get_config("tiny-256"))
    config = get_config("tiny-warp-256")
    config.generator.pixel_blend = False
    config.centred_grid = False
    skips = build_model(config)
    skips.load_state_dict(plain.state_dict(), strict=False)
    source, driving = _frames(2).split(1)
    with torch.no_grad():
        kp_s, kp_d = plain.kp_detector(source), plain.kp_detector(driving)
        expected = plain.generator(source, kp_d, kp_s)["prediction"]
        got = skips.generator(source, kp_d, kp_s)["prediction"]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_flow_loss_is_zero_for_the_exact_warp_and_grows_with_error() -> None:
    torch.manual_seed(0)
    teacher = make_coordinate_grid(256, 256, centred=True).unsqueeze(0) + 0.02 * torch.randn(
        1, 1, 1, 2
    )
    exact = resize_deformation(teacher, 64, 64, centred=True)  # a 64x64 motion, as FOMM's
    assert flow_loss(exact, teacher).item() < 1e-6
    losses = [flow_loss(exact + offset, teacher).item() for offset in (0.01, 0.02, 0.05)]
    assert losses[0] > 1e-3 and losses == sorted(losses)
    assert math.isclose(losses[1], 0.02, rel_tol=1e-4)


def test_dis_teacher_recovers_a_known_shift() -> None:
    frames = _frames(1)
    shifted = torch.roll(frames, shifts=3, dims=3)  # content moves 3 px to the right
    grid = dis_flow_grid(frames, shifted)
    identity = make_coordinate_grid(256, 256, centred=True)
    dx = ((grid - identity)[0, 64:192, 64:192, 0] * 128).median().item()
    assert abs(dx - (-3.0)) < 0.25
    warped = F.grid_sample(frames, grid, align_corners=False)
    assert (warped - shifted)[..., 64:192, 64:192].abs().mean() < (frames - shifted)[
        ..., 64:192, 64:192
    ].abs().mean() / 4


@pytest.mark.parametrize("scale", [1.0, None])
def test_refinement_never_makes_a_frame_worse(warp_model, scale) -> None:
    frames = _frames(4)
    source = frames[:1]
    params = QuantizationParams()
    with torch.no_grad():
        kp_source = warp_model.kp_detector(source)
        kp = warp_model.kp_detector(frames)
    motion = relative_motion(kp, kp[0]) if scale is not None else kp
    render = fomm_render(warp_model, source, kp_source, scale)
    _, start = refine_motion(render, motion, frames, 0, quantization=params, frozen=warp_model)
    refined, error = refine_motion(
        render, motion, frames, 6, learning_rate=5e-3, quantization=params, frozen=warp_model
    )
    assert torch.all(error <= start)
    assert error.sum() < start.sum()  # and it does improve something
    values = refined.value.numpy() * params.value_scale  # what it returns is what is sent
    np.testing.assert_allclose(values, np.rint(values), atol=1e-3)
    with torch.no_grad():
        again = reconstruction_error(
            fomm_render(warp_model, source, kp_source, scale), refined, frames
        )
    torch.testing.assert_close(again, error)
    assert all(p.requires_grad for p in warp_model.parameters())
