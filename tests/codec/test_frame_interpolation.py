"""In-between frames: the interpolator inside the decoder and ``fomc interpolate``."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import talking_head_frames
from test_codec import tiny_model

from fomcodec.cli.main import main
from fomcodec.codec import bitstream as bs
from fomcodec.codec.frame_interpolation import (
    MiddleFrameSynthesizer,
    double_frame_rate,
    fill_frames,
    frames_between,
)
from fomcodec.codec.pipeline import Decoder, Encoder
from fomcodec.errors import ModelError
from fomcodec.media.video_io import probe_video, read_frames
from fomcodec.nets.interpolator import FacialFrameInterpolator
from fomcodec.training.interpolation import load_overlapping
from fomcodec.zoo import get_interpolator_config, save_interpolator


def average(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    return (first + second) / 2


def ramp(count: int) -> torch.Tensor:
    """Frames whose value is their index: (count, 1, 2, 2)."""
    return torch.arange(count, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)


def values(batches) -> list[float]:
    return [float(f.mean()) for batch in batches for f in batch]


def test_frames_between_recurses_on_halves_in_time_order() -> None:
    first, second = torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 8.0)
    middles = frames_between(first, second, 8, average)
    assert [float(m[0].mean()) for m in middles] == [1, 2, 3, 4, 5, 6, 7]
    assert frames_between(first, second, 1, average) == []
    with pytest.raises(ValueError, match="powers of two"):
        frames_between(first, second, 3, average)


@pytest.mark.parametrize(
    ("stride", "total", "batch"),
    [(2, 9, 2), (2, 10, 3), (2, 10, 1), (4, 13, 2), (4, 11, 5), (2, 1, 4), (1, 5, 2)],
)
def test_fill_frames_restores_every_frame_and_holds_the_tail(
    stride: int, total: int, batch: int
) -> None:
    anchors = ramp(total)[::stride]
    out = list(fill_frames(anchors.split(batch), stride, total, average))
    last_anchor = (len(anchors) - 1) * stride
    expected = [float(min(i, last_anchor)) for i in range(total)]
    assert values(out) == expected


@pytest.mark.parametrize("batch", [1, 2, 4])
def test_fill_frames_follows_a_gap_per_anchor(batch: int) -> None:
    coded = [0, 8, 16, 17, 18, 20]
    anchors = ramp(23)[coded]
    gaps = [b - a for a, b in zip(coded, coded[1:], strict=False)]
    out = list(fill_frames(anchors.split(batch), gaps, 23, average))
    assert values(out) == [float(min(i, 20)) for i in range(23)]


def test_double_frame_rate_keeps_duration() -> None:
    out = list(double_frame_rate(ramp(5).split(2), average))
    assert values(out) == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4]
    assert list(double_frame_rate(iter([]), average)) == []


@pytest.fixture(scope="module")
def interpolator_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = FacialFrameInterpolator(get_interpolator_config("ffi-tiny")).eval()
    return save_interpolator(model, tmp_path_factory.mktemp("ffi") / "ffi-tiny.safetensors")


def test_synthesizer_loads_by_path_and_fails_clearly(tmp_path: Path) -> None:
    config = get_interpolator_config("ffi-tiny").replace(variant="proposed-s")
    path = save_interpolator(FacialFrameInterpolator(config), tmp_path / "s.safetensors")
    assert MiddleFrameSynthesizer(path).model.config.variant == "proposed-s"
    with pytest.raises(ModelError, match="not found"):
        MiddleFrameSynthesizer(tmp_path / "missing.safetensors")


def test_synthesizer_output_is_a_frame(interpolator_file: Path) -> None:
    synthesize = MiddleFrameSynthesizer(interpolator_file, bf16=False)
    frame = torch.rand(2, 3, 40, 56)
    middle = synthesize(frame, frame)
    assert middle.shape == frame.shape and middle.min() >= 0 and middle.max() <= 1


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def stride_two_stream(model) -> bs.Bitstream:
    frames = talking_head_frames(9, (256, 256))
    stream = Encoder(model, device="cpu", motion_stride=2).encode_frames(iter(frames), Fraction(25))
    return bs.unpack(bs.pack(stream))


@pytest.mark.parametrize(
    ("fill", "inbetween", "count"),
    [(True, "interpolator", 9), (True, "keypoints", 9), (False, "interpolator", 5)],
)
def test_decoder_fills_the_frames_without_motion(
    model, stride_two_stream, interpolator_file, fill, inbetween, count
) -> None:
    decoder = Decoder(
        model,
        device="cpu",
        batch_size=3,
        bf16=False,
        fill=fill,
        inbetween=inbetween,
        interpolator=interpolator_file,
    )
    header = stride_two_stream.header
    assert decoder.output_frame_count(header) == count
    assert decoder.output_fps(header) == (Fraction(25) if fill else Fraction(25, 2))
    batches = list(decoder.decode_stream(stride_two_stream))
    # stacks of batch_size, whatever the method (the batch command's metrics zip them with
    # the source's stacks)
    assert [len(b) for b in batches] == [3] * (count // 3) + ([count % 3] if count % 3 else [])
    decoded = np.concatenate(batches)
    assert decoded.shape == (count, 256, 256, 3)
    sent = np.concatenate(
        list(Decoder(model, device="cpu", bf16=False, fill=False).decode_stream(stride_two_stream))
    )
    step = 2 if fill else 1
    np.testing.assert_array_equal(decoded[::step], sent)


def test_decoder_method_choice(model) -> None:
    header = bs.StreamHeader(
        width=256,
        height=256,
        fps=Fraction(25),
        frame_count=10,
        model_name="m",
        weights_hash=bytes(8),
        num_kp=10,
        motion_stride=3,
    )
    assert (
        Decoder(model, device="cpu", inbetween="interpolator").inbetween_method(header)
        == "keypoints"
    )
    assert Decoder(model, device="cpu", fill=False).inbetween_method(header) is None
    header.motion_stride = 2
    assert Decoder(model, device="cpu").inbetween_method(header) == "interpolator"
    with pytest.raises(ValueError):
        Decoder(model, device="cpu", inbetween="magic")


def test_load_overlapping_copies_leading_channels() -> None:
    config = get_interpolator_config("ffi-tiny")
    full = FacialFrameInterpolator(config)
    four_way = FacialFrameInterpolator(config.replace(variant="proposed-as"))
    partial = load_overlapping(four_way, full.state_dict())
    assert partial and all("asymmetric" in name for name in partial)
    for name in partial:
        rows = full.state_dict()[name].shape[0]
        torch.testing.assert_close(four_way.state_dict()[name][:rows], full.state_dict()[name])
    with pytest.raises(ValueError, match="lack"):
        load_overlapping(full, {})


def test_cli_interpolate_doubles_the_frame_rate(
    make_clip, tmp_path: Path, interpolator_file: Path
) -> None:
    clip = make_clip(frames=6, size=(96, 64), fps=10)
    out = tmp_path / "double.mp4"
    result = CliRunner().invoke(
        main,
        [
            "interpolate",
            str(clip),
            "-o",
            str(out),
            "--interpolator",
            str(interpolator_file),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    info = probe_video(out)
    assert (info.width, info.height, info.fps) == (96, 64, Fraction(20))
    assert len(list(read_frames(out, 32))) == 12


def test_cli_interpolate_fails_cleanly(
    not_a_video: Path, tmp_path: Path, interpolator_file: Path
) -> None:
    out = tmp_path / "out.mp4"
    for args in (
        ["interpolate", str(not_a_video), "-o", str(out)],
        ["interpolate", str(tmp_path / "missing.mp4"), "-o", str(out)],
        [
            "interpolate",
            str(not_a_video),
            "-o",
            str(out),
            "--interpolator",
            str(tmp_path / "nope.safetensors"),
        ],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output and "error" in result.output
    assert not out.exists()


def test_cli_encode_stride_two_then_decode_with_and_without_filling(
    make_clip, tmp_path: Path, interpolator_file: Path
) -> None:
    from fomcodec.zoo import build_model, get_config, save_weights

    torch.manual_seed(0)
    weights = save_weights(build_model(get_config("tiny-256")), tmp_path / "tiny.safetensors")
    clip = make_clip(frames=9)
    stream = tmp_path / "clip.fomc"
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "encode",
            str(clip),
            "-o",
            str(stream),
            "--model",
            str(weights),
            "--motion-stride",
            "2",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert bs.load(stream).header.motion_stride == 2
    for options, fps, count in (
        (["--no-interpolate"], Fraction(25, 2), 5),
        (
            ["--inbetween", "interpolator", "--interpolator", str(interpolator_file)],
            Fraction(25),
            9,
        ),
    ):
        out = tmp_path / f"out{count}.mp4"
        result = runner.invoke(
            main,
            ["decode", str(stream), "-o", str(out), "--model", str(weights), "--quiet", *options],
        )
        assert result.exit_code == 0, result.output
        assert probe_video(out).fps == fps
        assert len(list(read_frames(out, 32))) == count
