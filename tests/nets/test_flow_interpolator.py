"""The flow interpolator: DIS motion, its warp, the refinement net, registry and training."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import talking_head_frames

from fomcodec.codec.frame_interpolation import MiddleFrameSynthesizer
from fomcodec.errors import ModelError
from fomcodec.nets.flow_interpolator import FlowInterpolator, FlowInterpolatorConfig, warp
from fomcodec.nets.interpolator import FacialFrameInterpolator
from fomcodec.nets.optical_flow import dis_flow
from fomcodec.tensors import image_psnr
from fomcodec.training.interpolation import InterpolatorTrainConfig, InterpolatorTrainer
from fomcodec.zoo import (
    build_interpolator,
    get_interpolator_config,
    load_interpolator,
    save_interpolator,
    weights_hash,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def texture(height: int = 64, width: int = 64, margin: int = 8, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture, ``margin`` pixels wider on each side than asked."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height + 2 * margin, width + 2 * margin, 3)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 2.0)


def shifted(image: np.ndarray, dx: int, size: int = 64, margin: int = 8) -> torch.Tensor:
    """The window of ``image`` moved ``dx`` pixels right, as a (1, 3, size, size) tensor: the
    content appears to move ``-dx``."""
    window = image[margin : margin + size, margin + dx : margin + dx + size]
    frame = (window - window.min()) / (window.max() - window.min())
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None]


def test_dis_flow_finds_a_translation() -> None:
    image = texture()
    first, second = shifted(image, 0), shifted(image, 3)
    flow = dis_flow(first, second, "medium")
    assert flow.shape == (1, 2, 64, 64)
    inner = flow[..., 12:-12, 12:-12]
    # content moves 3 px left: pixel p of the first frame is at p - 3 in the second
    assert abs(float(inner[:, 0].median()) + 3) < 0.3
    assert abs(float(inner[:, 1].median())) < 0.3
    # warping the second frame by that flow gives back the first
    assert float(image_psnr(warp(second, flow), first)[0]) > float(
        image_psnr(second, first)[0] + 10
    )
    with pytest.raises(ValueError, match="DIS preset"):
        dis_flow(first, second, "slowest")


def test_untrained_network_is_the_average_of_the_flow_warps() -> None:
    image = texture(seed=1)
    frame0, middle, frame1 = shifted(image, -2), shifted(image, 0), shifted(image, 2)
    model = build_interpolator(FlowInterpolatorConfig(name="t", channels=[4, 8], bf16=False))
    with torch.no_grad():
        out = model(frame0, frame1)
    # the zero-initialised output conv: no correction, an even blend, no residual
    torch.testing.assert_close(out["occlusion"], torch.full_like(out["occlusion"], 0.5))
    torch.testing.assert_close(out["frame"], out["base"])
    inner = (..., slice(8, -8), slice(8, -8))
    ours = float(image_psnr(out["frame"][inner].clamp(0, 1), middle[inner])[0])
    averaged = float(image_psnr(((frame0 + frame1) / 2)[inner], middle[inner])[0])
    assert ours > averaged + 8, (ours, averaged)


def test_any_frame_size_and_one_mode() -> None:
    model = FlowInterpolator(FlowInterpolatorConfig(channels=[4, 8, 8], scale=2)).eval()
    frames = torch.from_numpy(talking_head_frames(3, size=(45, 37))).permute(0, 3, 1, 2) / 255
    with torch.no_grad():
        out = model(frames[:2], frames[1:], return_motion=True)
    assert out["frame"].shape == (2, 3, 37, 45)
    assert [m.shape for m in out["motion"]] == [(2, 2, 37, 45)] * 2
    with pytest.raises(ValueError, match="one mode"):
        model(frames[:1], frames[1:2], mode="asymmetric")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"flow_preset": "slowest"}, "flow_preset"),
        ({"scale": 3}, "scale"),
        ({"channels": [8]}, "channels"),
    ],
)
def test_config_is_checked(changes: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        FlowInterpolatorConfig(**changes)


def test_registry_tells_the_two_architectures_apart(tmp_path) -> None:
    config = get_interpolator_config("ffi-flow-tiny")
    assert isinstance(config, FlowInterpolatorConfig) and config.channels == [4, 8]
    assert isinstance(build_interpolator("ffi-tiny"), FacialFrameInterpolator)
    model = build_interpolator(config)
    torch.nn.init.normal_(model.refine.output.weight, std=0.01)
    path = save_interpolator(model, tmp_path / "flow.safetensors")
    loaded = load_interpolator(path)
    assert isinstance(loaded, FlowInterpolator) and loaded.config == config
    torch.testing.assert_close(
        loaded.refine.output.weight, model.refine.output.weight.half().float()
    )
    assert loaded.weights_hash != weights_hash(build_interpolator(config))


def test_reduced_precision_path_agrees() -> None:
    model = build_interpolator("ffi-flow")
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.05)
    frames = torch.from_numpy(talking_head_frames(2, size=(64, 64))).permute(0, 3, 1, 2) / 255
    exact = MiddleFrameSynthesizer(model, bf16=False)(frames[:1], frames[1:])
    fast = MiddleFrameSynthesizer(model, bf16=True)(frames[:1], frames[1:])
    assert (fast - exact).abs().mean() < 0.01


def test_training_distils_from_a_teacher_and_exports(tmp_path) -> None:
    frames = talking_head_frames(12, size=(32, 32))
    clips = [frames[:8], frames[6:]]
    # a teacher the student can match: the same network, with its blend leaning to frame 0
    # and a brighter residual
    teacher_model = build_interpolator("ffi-flow-tiny")
    with torch.no_grad():
        teacher_model.refine.output.bias[4:] = torch.tensor([2.0, 0.05, 0.05, 0.05])
    teacher = save_interpolator(teacher_model, tmp_path / "teacher.safetensors")
    config = InterpolatorTrainConfig(
        stage="finetune",
        steps=40,
        batch_size=4,
        lr=1e-2,
        amp=False,
        teacher=str(teacher),
        teacher_weight=1.0,
        validate_every=40,
        validation_per_clip=2,
        device="cpu",
    )
    student = get_interpolator_config("ffi-flow-tiny")
    trainer = InterpolatorTrainer(student, config, tmp_path / "run", clips, clips)
    batch = trainer.sampler.sample(4)
    with torch.no_grad():
        before = trainer.losses(*batch)
    assert set(before) == {"charbonnier", "distillation"} and before["distillation"] > 0
    metrics = trainer.run(export_path=tmp_path / "student.safetensors")
    with torch.no_grad():
        after = trainer.losses(*batch)
    # the student moves towards the teacher's frames
    assert after["distillation"] < 0.9 * before["distillation"], (before, after)
    assert metrics is not None and np.isfinite(metrics["psnr"])
    assert isinstance(load_interpolator(tmp_path / "student.safetensors"), FlowInterpolator)
