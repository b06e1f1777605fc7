"""Keyframes: shot cuts, closed-loop refresh and the maximum interval, end to end with a tiny
model."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import talking_head_frames, two_shots, write_clip
from test_codec import tiny_model

from fomcodec.cli.main import main
from fomcodec.codec import bitstream as bs
from fomcodec.codec.image_codec import decode_image
from fomcodec.codec.keyframes import WINDOW, Check, RefreshMonitor, check_step
from fomcodec.codec.pipeline import Decoder, Encoder
from fomcodec.nets.keypoint_detector import Keypoints
from fomcodec.zoo import build_model, get_config, save_weights, weights_hash


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def encode(model, frames: np.ndarray, **options) -> bs.Bitstream:
    options = {"device": "cpu", "audio_bit_rate": None, "refresh_db": None, **options}
    stream = Encoder(model, **options).encode_frames(iter(frames), Fraction(25))
    return bs.unpack(bs.pack(stream))


def decode(model, stream: bs.Bitstream, **options) -> np.ndarray:
    decoder = Decoder(model, device="cpu", bf16=False, **options)
    return np.concatenate(list(decoder.decode_stream(stream)))


@pytest.mark.parametrize("stride,keyframe", [(1, 30), (2, 30), (4, 32)])
def test_a_cut_starts_a_keyframe_on_the_next_sent_frame(model, stride, keyframe) -> None:
    frames = two_shots()
    stream = encode(model, frames, motion_stride=stride, image_codec="png")
    assert [k.frame for k in stream.keyframes] == [keyframe]
    assert np.array_equal(decode_image(stream.source_images[1]), frames[keyframe])
    assert len(stream.source_images) == 2 and stream.version == 3
    # motion restarts from rest at the keyframe: it is relative to the new source
    first_of_shot = keyframe // stride
    assert not stream.motion.values[first_of_shot].any()
    assert stream.motion.values[first_of_shot - 1].any()
    decoded = decode(model, stream)
    assert len(decoded) == len(frames)
    without = encode(model, frames, motion_stride=stride, cut_threshold=None)
    assert len(without.source_images) == 1


def test_every_source_image_drives_its_own_frames(model) -> None:
    frames = two_shots()
    stream = encode(model, frames, image_codec="png")
    decoded = decode(model, stream, fill=False)
    assert len(decoded) == 30
    swapped = bs.Bitstream(
        stream.header,
        stream.source_images[::-1],
        stream.motion,
        stream.motion_coding,
        keyframes=stream.keyframes,
    )
    again = decode(model, swapped, fill=False)
    assert not np.array_equal(again[:15], decoded[:15])
    assert not np.array_equal(again[15:], decoded[15:])


def test_the_maximum_interval_places_keyframes(model) -> None:
    frames = talking_head_frames(50, (256, 256))
    stream = encode(model, frames, max_keyframe_interval=0.8, cut_threshold=None)
    assert [k.frame for k in stream.keyframes] == [20, 40]
    assert bs.unpack(bs.pack(stream)).sizes["image"] == sum(
        len(i.data) + 1 for i in stream.source_images
    )


def source_copying_model():
    """A tiny model that shows the (warped) source image, as a trained one mostly does."""
    torch.manual_seed(0)
    model = build_model(get_config("tiny-warp-256"))
    with torch.no_grad():
        model.generator.blend.bias.fill_(8.0)
    model.model_name = "tiny-warp-256"
    model.weights_hash = weights_hash(model)
    return model


def test_refresh_follows_a_picture_that_drifts_away() -> None:
    model = source_copying_model()
    head = talking_head_frames(120, (256, 256)).astype(np.float32)
    other = np.ascontiguousarray(head[:, ::-1, ::-1])
    fade = np.linspace(0, 1, len(head))[:, None, None, None] ** 2
    frames = (head * (1 - fade) + other * fade).astype(np.uint8)
    assert len(encode(model, frames, cut_threshold=None).source_images) == 1
    stream = encode(model, frames, cut_threshold=None, refresh_db=1.0)
    assert len(stream.source_images) >= 2
    step = check_step(25, 2)
    first = stream.keyframes[0].frame
    assert first % step == 0 and first >= (WINDOW + 1) * step
    assert len(decode(model, stream)) == len(frames)


def test_refresh_monitor_tries_once_a_window_and_wants_the_gain() -> None:
    monitor = RefreshMonitor(gain=2.0)
    frame, kp = torch.zeros(1, 3, 8, 8), Keypoints(torch.zeros(1, 10, 2))
    for psnr in (20.0, 21.0):
        monitor.record(Check(frame, kp, psnr))
        assert not monitor.try_due()
    monitor.record(Check(frame, kp, 22.0))
    assert monitor.try_due()
    assert not monitor.worth_it([22.0, 23.0, 23.9])  # 1.97 dB better: not enough
    assert not monitor.try_due()  # the next try waits a whole window
    for psnr in (20.0, 20.0, 20.0):
        monitor.record(Check(frame, kp, psnr))
    assert monitor.try_due() and monitor.worth_it([22.0, 22.0, 22.0])
    with pytest.raises(ValueError, match="refresh_db"):
        Encoder(tiny_model(), device="cpu", refresh_db=-1)


def test_interpolated_frames_never_cross_a_keyframe(model) -> None:
    frames = two_shots(31)  # the cut on an odd frame: the keyframe waits for the next sent one
    stream = encode(model, frames, motion_stride=2)
    assert [k.frame for k in stream.keyframes] == [32]
    for inbetween in ("keypoints", "interpolator"):
        decoded = decode(model, stream, inbetween=inbetween)
        assert len(decoded) == 62


def test_cli_lists_keyframes_and_decodes(tmp_path: Path, model) -> None:
    weights = tmp_path / "tiny.safetensors"
    save_weights(model, weights)
    clip = write_clip(tmp_path / "cut.mp4", list(two_shots(20)), fps=25)
    runner = CliRunner()
    out = tmp_path / "cut.fomc"
    args = ["encode", str(clip), "-o", str(out), "--model", str(weights), "--config", "tiny-256"]
    result = runner.invoke(main, [*args, "--no-audio", "--quiet"])
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(main, ["info", str(out), "--json"]).output)
    assert [(i["frame"], i["frames"]) for i in info["source_images"]] == [(0, 20), (20, 20)]
    assert info["format_version"] == 3
    text = runner.invoke(main, ["info", str(out)]).output
    assert "2 keyframe(s)" in text and "from frame 20 (0.8 s)" in text
    result = runner.invoke(main, [*args, "--no-audio", "--quiet", "-y", "--cut-threshold", "0"])
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(main, ["info", str(out), "--json"]).output)
    assert len(info["source_images"]) == 1
    decoded = tmp_path / "cut.mp4.out.mp4"
    result = runner.invoke(
        main, ["decode", str(out), "-o", str(decoded), "--model", str(weights), "--quiet"]
    )
    assert result.exit_code == 0, result.output
