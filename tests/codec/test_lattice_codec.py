"""Encoder and Decoder with the lattice warp (fomc-lattice): stream layout, quality against
repeating the source, presets, keyframes and model checks."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from conftest import talking_head_frames, two_shots

from fomcodec.codec import bitstream as bs
from fomcodec.codec.pipeline import Decoder, Encoder, LatticeRenderer
from fomcodec.codec.quantization import QuantizationParams
from fomcodec.codec.refinement import reconstruction_error, refine_motion
from fomcodec.errors import ModelMismatchError
from fomcodec.tensors import frames_to_images
from fomcodec.zoo import load_model


@pytest.fixture(scope="module")
def lattice():
    return load_model("fomc-lattice")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return talking_head_frames(16, (256, 256))


def _encode(model, frames: np.ndarray, **options) -> bs.Bitstream:
    options = {"device": "cpu", "audio_bit_rate": None, "image_codec": "png", **options}
    stream = Encoder(model, **options).encode_frames(iter(frames), Fraction(25))
    return bs.unpack(bs.pack(stream))


def _decode(model, stream: bs.Bitstream, **options) -> np.ndarray:
    return np.concatenate(list(Decoder(model, device="cpu", **options).decode_stream(stream)))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def test_the_stream_carries_lattice_motion_at_the_models_scale(lattice, frames) -> None:
    stream = _encode(lattice, frames, motion_stride=2)
    header = stream.header
    assert header.model_name == "fomc-lattice" and header.weights_hash == lattice.weights_hash
    assert header.num_kp == 16 and not header.has_jacobians and not header.relative_motion
    assert header.quantization.value_scale == lattice.config.value_scale
    assert stream.motion.values.shape == (8, 16, 2)
    assert stream.motion.values[1:].any()


@pytest.mark.parametrize("stride", [1, 2])
def test_decoded_frames_follow_the_head_far_better_than_the_source(lattice, frames, stride):
    stream = _encode(lattice, frames, motion_stride=stride, refresh_db=None)
    decoded = _decode(lattice, stream)
    assert decoded.shape == frames.shape
    ours = np.mean([_psnr(d, f) for d, f in zip(decoded[1:], frames[1:], strict=True)])
    repeat = np.mean([_psnr(frames[0], f) for f in frames[1:]])
    assert ours > repeat + 4


def test_fitting_never_makes_a_frame_worse(lattice, frames) -> None:
    renderer = LatticeRenderer(lattice, frames[0], torch.device("cpu"))
    targets = frames_to_images(frames[1:6], torch.device("cpu"))
    params = QuantizationParams(125, 10)
    estimate = lattice.estimate(targets, renderer.source)
    render = renderer.differentiable()
    _, start = refine_motion(render, estimate, targets, 0, quantization=params)
    fitted, error = refine_motion(render, estimate, targets, 12, quantization=params)
    assert torch.all(error <= start) and error.sum() < start.sum()
    np.testing.assert_allclose(fitted.value.numpy() * 125, np.rint(fitted.value.numpy() * 125))
    with torch.no_grad():
        torch.testing.assert_close(reconstruction_error(render, fitted, targets), error)


def test_the_medium_preset_fits_the_lattice_to_the_frame(lattice, frames) -> None:
    fast = _encode(lattice, frames[:8], motion_stride=1, refresh_db=None, preset="fast")
    medium = _encode(lattice, frames[:8], motion_stride=1, refresh_db=None, preset="medium")
    assert medium.header == fast.header
    scores = [
        np.mean([_psnr(d, f) for d, f in zip(_decode(lattice, s)[1:], frames[1:8], strict=True)])
        for s in (fast, medium)
    ]
    assert scores[1] > scores[0]


def test_a_cut_gives_the_second_shot_its_own_source(lattice) -> None:
    frames = two_shots()
    stream = _encode(lattice, frames, refresh_db=1.0)
    assert len(stream.source_images) >= 2
    decoded = _decode(lattice, stream)
    assert _psnr(decoded[45], frames[45]) > _psnr(frames[30], frames[45])


def test_a_lattice_stream_needs_the_same_lattice(lattice, frames, tmp_path) -> None:
    stream = _encode(lattice, frames[:4])
    path = tmp_path / "five.yaml"
    lattice.config.replace(name="five", lattice_size=5).to_yaml(path)
    with pytest.raises(ModelMismatchError, match="weights"):
        _decode(load_model(path), stream)
    with pytest.raises(ModelMismatchError):
        _decode(load_model("tiny-256", pretrained=False), stream)


def test_the_default_preset_fits_a_lattice_but_not_a_fomm_model(lattice) -> None:
    assert Encoder(lattice, device="cpu").preset.name == "medium"
    fomm = load_model("tiny-256", pretrained=False)
    assert Encoder(fomm, device="cpu").preset.name == "fast"
    with pytest.raises(ValueError, match="known: fast, medium, slow"):
        Encoder(lattice, device="cpu", preset="placebo")


def test_frames_in_between_from_the_interpolated_lattice(lattice, frames) -> None:
    stream = _encode(lattice, frames, motion_stride=2, refresh_db=None)
    by_lattice = _decode(lattice, stream, inbetween="keypoints")
    by_interpolator = _decode(lattice, stream)
    np.testing.assert_array_equal(by_lattice[::2], by_interpolator[::2])  # the sent frames
    repeat = np.mean([_psnr(frames[0], f) for f in frames[1::2]])
    for decoded in (by_lattice, by_interpolator):
        ours = np.mean([_psnr(d, f) for d, f in zip(decoded[1::2], frames[1::2], strict=True)])
        assert ours > repeat + 4
