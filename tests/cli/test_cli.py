"""`fomc` end to end on a synthetic clip with a tiny model, and every bad-input case."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import pytest
import torch
from click.testing import CliRunner

from fomcodec.cli.main import main
from fomcodec.codec import bitstream as bs
from fomcodec.media.video_io import probe_video
from fomcodec.zoo import build_model, get_config, save_weights


def _tiny_weights(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_weights(build_model(get_config("tiny-256")), path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def weights(workdir: Path) -> Path:
    return _tiny_weights(workdir / "tiny.safetensors", seed=0)


@pytest.fixture(scope="module")
def encoded(workdir: Path, weights: Path) -> Path:
    from conftest import synthetic_talking_head

    clip = synthetic_talking_head(workdir / "clip.mp4", frames=20)
    out = workdir / "clip.fomc"
    result = run("encode", str(clip), "-o", str(out), "--model", str(weights), "--device", "cpu")
    assert result.exit_code == 0, result.output
    return out


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_clean_failure(result, code: int = 1, match: str = "") -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("fomc: error:"), result.stderr
        assert match.lower() in lines[0].lower()


def test_encode_info_decode_round_trip(workdir: Path, encoded: Path, weights: Path) -> None:
    info = run("info", str(encoded), "--json")
    assert info.exit_code == 0
    desc = json.loads(info.stdout)
    assert desc["frames"] == 20 and desc["model"] == "tiny-256"
    assert desc["bytes"] == encoded.stat().st_size == sum(desc["sizes"].values())
    assert desc["kbps"] == pytest.approx(desc["bytes"] * 8 / 1000 / 0.8, rel=1e-3)
    text = run("info", str(encoded))
    assert "motion" in text.stdout and "kbit/s" in text.stdout
    out = workdir / "decoded.mp4"
    result = run("decode", str(encoded), "-o", str(out), "--model", str(weights))
    assert result.exit_code == 0, result.output
    assert "decoded 20 frames" in result.stderr and "kbit/s" in result.stderr
    video = probe_video(out)
    assert (video.width, video.height, video.fps) == (256, 256, Fraction(25))


def test_default_output_name_and_overwrite_rules(
    workdir: Path, encoded: Path, weights: Path, monkeypatch
) -> None:
    monkeypatch.chdir(workdir)
    target = workdir / "clip.mp4"  # the source clip itself: must not be overwritten silently
    before = target.read_bytes()
    result = run("decode", str(encoded), "--model", str(weights))
    assert_clean_failure(result, match="already exists")
    assert target.read_bytes() == before
    again = run("encode", "clip.mp4", "--model", str(weights), "--frames", "3")
    assert_clean_failure(again, match="-y")
    forced = run("encode", "clip.mp4", "--model", str(weights), "--frames", "3", "-y")
    assert forced.exit_code == 0, forced.output
    assert bs.load(workdir / "clip.fomc").header.frame_count == 3


def test_bad_inputs_fail_cleanly_without_output(
    workdir: Path, weights: Path, not_a_video: Path, empty_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.fomc"
    for bad, match in (
        (tmp_path / "missing.mp4", "missing.mp4"),
        (not_a_video, "notes.mp4"),
        (empty_file, "empty.mp4"),
    ):
        result = run("encode", str(bad), "-o", str(out), "--model", str(weights))
        assert_clean_failure(result, match=match)
        assert not out.exists()
    no_frames = tmp_path / "no-frames.mp4"
    with av.open(str(no_frames), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 64
    result = run("encode", str(no_frames), "-o", str(out), "--model", str(weights))
    assert_clean_failure(result, match="frames")
    assert not out.exists()
    assert not list(tmp_path.glob(".*part*"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "version", "garbage"])
def test_damaged_streams_fail_cleanly_without_output(
    encoded: Path, weights: Path, tmp_path: Path, damage: str
) -> None:
    data = bytearray(encoded.read_bytes())
    if damage == "truncate":
        data = data[: len(data) * 2 // 3]
    elif damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "version":
        data[4] = 99
    else:
        data = bytearray(b"RIFF" + bytes(200))
    bad = tmp_path / "bad.fomc"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out.mp4"
    result = run("decode", str(bad), "-o", str(out), "--model", str(weights))
    assert_clean_failure(result, match="version" if damage == "version" else "")
    assert not out.exists()
    assert_clean_failure(run("info", str(bad)))


def test_stream_from_other_weights_is_refused(encoded: Path, tmp_path: Path) -> None:
    other = _tiny_weights(tmp_path / "other.safetensors", seed=1)
    out = tmp_path / "out.mp4"
    result = run("decode", str(encoded), "-o", str(out), "--model", str(other))
    assert_clean_failure(result, match="weights")
    assert not out.exists()
    unknown = run("decode", str(encoded), "-o", str(out))  # tiny-256 ships no weights
    assert_clean_failure(unknown, match="no trained weights")


def test_usage_errors_exit_2(encoded: Path) -> None:
    assert run("encode").exit_code == 2
    assert run("encode", str(encoded), "--motion-stride", "0").exit_code == 2
    assert run("encode", str(encoded), "--crop", "nonsense").exit_code == 2
    assert run("frobnicate").exit_code == 2


@pytest.mark.parametrize(
    ("stride", "text"),
    [
        (1, "every frame"),
        (2, "every 2nd frame"),
        (3, "every 3rd frame"),
        (11, "every 11th frame"),
        (21, "every 21st frame"),
        (112, "every 112th frame"),
    ],
)
def test_info_names_the_motion_stride(stride: int, text: str) -> None:
    from fomcodec.cli.main import _every_nth

    assert _every_nth(stride) == text


def _frames_of(path: Path):
    import numpy as np

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec, pix_fmt = stream.codec_context.name, stream.codec_context.pix_fmt
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return codec, pix_fmt, frames


def test_decode_output_control(encoded: Path, weights: Path, tmp_path: Path) -> None:
    import numpy as np

    from fomcodec.codec.pipeline import Decoder
    from fomcodec.zoo import load_model

    exact = np.concatenate(
        list(Decoder(load_model(weights), device="cpu").decode_stream(bs.load(encoded)))
    )
    # (options, what a decoder reports: codec and pixel format; x264rgb's RGB reads as gbrp)
    cases = {
        "lossless.mkv": (["--lossless"], "h264", "gbrp"),
        "ffv1.mkv": (["--lossless", "--codec", "ffv1"], "ffv1", "bgr0"),
        "yuv444.mp4": (["--crf", "10", "--pix-fmt", "yuv444p"], "h264", "yuv444p"),
        "default.mp4": ([], "h264", "yuv420p"),
    }
    errors = {}
    for name, (options, codec, pix_fmt) in cases.items():
        out = tmp_path / name
        result = run(
            "decode",
            str(encoded),
            "-o",
            str(out),
            "--model",
            str(weights),
            "--device",
            "cpu",
            "--quiet",
            *options,
        )
        assert result.exit_code == 0, result.output
        got_codec, got_pix_fmt, frames = _frames_of(out)
        assert (got_codec, got_pix_fmt) == (codec, pix_fmt)
        errors[name] = np.abs(frames.astype(int) - exact.astype(int)).mean()
    assert errors["lossless.mkv"] == 0 and errors["ffv1.mkv"] == 0
    assert 0 < errors["yuv444.mp4"] < errors["default.mp4"]


@pytest.mark.parametrize(
    "options, match",
    [
        (["--lossless", "--crf", "20"], "not lossless"),
        (["--lossless", "--codec", "libx264"], "not lossless"),
        (["--codec", "ffv1", "--pix-fmt", "yuv422p"], "pixel format"),
    ],
)
def test_contradictory_output_options_are_usage_errors(
    encoded: Path, weights: Path, tmp_path: Path, options, match
) -> None:
    out = tmp_path / "x.mkv"
    result = run("decode", str(encoded), "-o", str(out), "--model", str(weights), *options)
    assert_clean_failure(result, code=2)
    assert match in result.output and not out.exists()


def test_interpolate_lossless_keeps_the_input_frames(workdir: Path, tmp_path: Path) -> None:
    import numpy as np
    from conftest import synthetic_talking_head

    from fomcodec.nets.interpolator import FacialFrameInterpolator
    from fomcodec.zoo import get_interpolator_config, save_interpolator

    clip = synthetic_talking_head(tmp_path / "in.mp4", frames=4, size=(64, 48))
    torch.manual_seed(0)
    interpolator = save_interpolator(
        FacialFrameInterpolator(get_interpolator_config("ffi-tiny")).eval(),
        tmp_path / "ffi-tiny.safetensors",
    )
    out = tmp_path / "double.mkv"
    result = run(
        "interpolate",
        str(clip),
        "-o",
        str(out),
        "--interpolator",
        str(interpolator),
        "--device",
        "cpu",
        "--lossless",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    _, pix_fmt, frames = _frames_of(out)
    _, _, original = _frames_of(clip)
    assert pix_fmt == "gbrp" and len(frames) == 2 * len(original)
    np.testing.assert_array_equal(frames[::2], original)


def test_train_needs_data_and_keeps_its_cache_out_of_the_current_folder(
    tmp_path: Path, monkeypatch
) -> None:
    from conftest import synthetic_talking_head

    clips = tmp_path / "clips"
    clips.mkdir()
    synthetic_talking_head(clips / "a.mp4", frames=6, size=(256, 256))
    synthetic_talking_head(clips / "b.mp4", frames=6, size=(256, 256))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["a.mp4"], "validation": ["b.mp4"]}))
    assert_clean_failure(run("train", "--run-dir", str(tmp_path / "run")), code=2)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    result = run(
        "train",
        "--config",
        "tiny-256",
        "--data",
        str(clips),
        "--split",
        str(split),
        "--run-dir",
        str(tmp_path / "run"),
        "--steps",
        "2",
        "--threads",
        "1",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert sorted(p.name for p in (tmp_path / "xdg" / "fomcodec" / "frames").iterdir()) == [
        "a.npy",
        "b.npy",
    ]
    assert not (tmp_path / "data").exists()


def test_the_command_line_starts_without_torch() -> None:
    """``fomc --help`` and ``fomc info`` stay fast: the CLI module loads no network code."""
    import subprocess
    import sys

    code = "import sys, fomcodec.cli.main; print('torch' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_default_model_encodes_without_weights_and_cannot_be_trained(
    tmp_path: Path, synthetic_clip: Path
) -> None:
    out = tmp_path / "clip.fomc"
    result = run("encode", str(synthetic_clip), "-o", str(out), "--device", "cpu")
    assert result.exit_code == 0, result.output
    desc = json.loads(run("info", str(out), "--json").stdout)
    assert desc["model"] == "fomc-lattice" and desc["keypoints"] == 16
    decoded = tmp_path / "clip.mp4"
    assert run("decode", str(out), "-o", str(decoded), "--device", "cpu").exit_code == 0
    assert decoded.stat().st_size > 0
    clips = tmp_path / "clips"
    clips.mkdir()
    assert_clean_failure(
        run("train", "--config", "fomc-lattice", "--data", str(clips), "--run-dir", "r"),
        match="no weights to train",
    )
