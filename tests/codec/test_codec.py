"""The Python API: Encoder/Decoder on synthetic frames with a tiny model."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import talking_head_frames

from fomcodec.codec import bitstream as bs
from fomcodec.codec.image_codec import decode_image
from fomcodec.codec.pipeline import Decoder, Encoder, decode, encode
from fomcodec.codec.quantization import QuantizationParams
from fomcodec.errors import InputError, ModelMismatchError
from fomcodec.media.video_io import probe_video, read_frames
from fomcodec.zoo import build_model, get_config, save_weights, weights_hash


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(get_config("tiny-256"))
    with torch.no_grad():  # a non-trivial Jacobian head, as a trained model has
        model.kp_detector.jacobian.weight.normal_(0, 1e-3)
    model.model_name = "tiny-256"
    model.weights_hash = weights_hash(model)
    return model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return talking_head_frames(12, (256, 256))


def test_round_trip_yields_every_frame_in_bounded_batches(model, frames) -> None:
    stream = Encoder(model, device="cpu", batch_size=5, motion_stride=1).encode_frames(
        iter(frames), Fraction(25)
    )
    assert stream.header.frame_count == len(frames)
    assert stream.motion.values.shape == (len(frames), 10, 2)
    stream = bs.unpack(bs.pack(stream))
    batches = list(Decoder(model, device="cpu", batch_size=5, bf16=False).decode_stream(stream))
    assert [len(b) for b in batches] == [5, 5, 2]
    decoded = np.concatenate(batches)
    assert decoded.shape == (12, 256, 256, 3) and decoded.dtype == np.uint8


def test_relative_motion_starts_at_rest(model, frames) -> None:
    stream = Encoder(model, device="cpu").encode_frames(iter(frames), Fraction(25))
    assert not stream.motion.values[0].any()
    one = stream.header.quantization.jacobian_scale
    np.testing.assert_array_equal(
        stream.motion.jacobians[0],
        np.broadcast_to(np.array([[one, 0], [0, one]], np.int16), (10, 2, 2)),
    )
    assert stream.motion.values[1:].any()


def test_decoder_uses_keypoints_of_the_decoded_source(model, frames) -> None:
    stream = Encoder(model, device="cpu", image_codec="png").encode_frames(
        iter(frames[:3]), Fraction(25)
    )
    decoded = next(Decoder(model, device="cpu", bf16=False).decode_stream(stream))
    source = torch.from_numpy(decode_image(stream.source_images[0])).permute(2, 0, 1)[None] / 255
    with torch.no_grad():
        kp = model.kp_detector(source)
        expected = model.generator(source, kp, kp)["prediction"]
    expected = (expected.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.abs(decoded[0].astype(int) - expected[0].astype(int)).max() <= 1


def test_motion_stride_sends_fewer_keypoints_and_restores_the_frame_count(model, frames) -> None:
    stream = Encoder(model, device="cpu", motion_stride=2, batch_size=5).encode_frames(
        iter(frames[:11]), Fraction(25)
    )
    assert stream.header.motion_stride == 2
    assert stream.motion.values.shape[0] == 6
    full = Encoder(model, device="cpu", motion_stride=1).encode_frames(
        iter(frames[:11]), Fraction(25)
    )
    np.testing.assert_array_equal(stream.motion.values, full.motion.values[::2])
    default = Encoder(model, device="cpu").encode_frames(iter(frames[:11]), Fraction(25))
    assert default.header.motion_stride == bs.DEFAULT_MOTION_STRIDE == 2
    decoded = np.concatenate(list(Decoder(model, device="cpu").decode_stream(stream)))
    assert len(decoded) == 11


def test_refining_presets_lower_the_error_of_what_the_decoder_makes(model, frames) -> None:
    def error(stream: bs.Bitstream) -> float:
        decoded = np.concatenate(
            list(
                Decoder(model, device="cpu", bf16=False, fill=False).decode_stream(
                    bs.unpack(bs.pack(stream))
                )
            )
        )
        return float(np.abs(decoded.astype(float) - frames[:6].astype(float)).mean())

    fine = QuantizationParams(10_000, 1_000)
    fast = Encoder(model, device="cpu", motion_stride=1, quantization=fine).encode_frames(
        iter(frames[:6]), Fraction(25)
    )
    medium = Encoder(
        model, device="cpu", motion_stride=1, preset="medium", quantization=fine
    ).encode_frames(iter(frames[:6]), Fraction(25))
    assert medium.header == fast.header
    assert not np.array_equal(medium.motion.values, fast.motion.values)
    assert error(medium) < error(fast)
    with pytest.raises(ValueError, match="known: fast, medium, slow"):
        Encoder(model, device="cpu", preset="placebo")


def test_clipping_is_counted_and_recorded(model, frames) -> None:
    stream = Encoder(
        model, device="cpu", relative=False, quantization=QuantizationParams(value_scale=1_000_000)
    ).encode_frames(iter(frames[:4]), Fraction(25))
    assert stream.motion.clipped > 0
    assert stream.header.clipped == stream.motion.clipped


def test_other_weights_are_refused(model, frames) -> None:
    stream = Encoder(model, device="cpu").encode_frames(iter(frames[:2]), Fraction(25))
    with pytest.raises(ModelMismatchError, match="weights"):
        next(Decoder(tiny_model(seed=1), device="cpu").decode_stream(stream))


def test_empty_input_is_an_input_error(model) -> None:
    with pytest.raises(InputError, match="no frames"):
        Encoder(model, device="cpu").encode_frames(iter([]), Fraction(25))


def test_file_api_round_trip(tmp_path: Path, synthetic_clip: Path) -> None:
    weights = save_weights(tiny_model(), tmp_path / "tiny.safetensors")
    stats = encode(synthetic_clip, tmp_path / "clip.fomc", model=weights, device="cpu")
    assert stats.frames == 25 and stats.total_bytes == (tmp_path / "clip.fomc").stat().st_size
    assert stats.sizes["image"] > 0 and stats.sizes["motion"] > 0
    stats = decode(tmp_path / "clip.fomc", tmp_path / "clip.mp4", model=weights, device="cpu")
    info = probe_video(tmp_path / "clip.mp4")
    assert (info.width, info.height, info.fps) == (256, 256, Fraction(25))
    assert sum(1 for _ in read_frames(tmp_path / "clip.mp4")) == 25
