"""Video reading and writing through PyAV: round trips, streaming, bad inputs."""

from __future__ import annotations

import inspect
import json
import tracemalloc
import wave
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import synthetic_talking_head, talking_head_frames
from PIL import Image

from fomcodec.errors import FomcError, InputError
from fomcodec.fileio import OutputExistsError
from fomcodec.media.crop import CropBox, centre_square, crop_and_resize
from fomcodec.media.video_io import (
    LOSSLESS_ENCODERS,
    LOSSY_ENCODERS,
    VideoInfo,
    VideoWriter,
    has_encoder,
    iter_batches,
    pick_encoder,
    probe_video,
    read_frames,
)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def expected_frames(
    frames: int, size: tuple[int, int], out: int = 256, box: CropBox | None = None
) -> np.ndarray:
    box = box or centre_square(*size)
    return np.stack([crop_and_resize(f, box, out) for f in talking_head_frames(frames, size)])


# Reading


def test_probe_describes_the_clip(synthetic_clip: Path) -> None:
    info = probe_video(synthetic_clip)
    assert info == VideoInfo(320, 240, Fraction(25), 25, info.duration, 0)
    assert isinstance(info.fps, Fraction)
    assert info.duration == pytest.approx(1.0, abs=0.05)


def test_read_frames_gives_centre_square_frames(synthetic_clip: Path) -> None:
    frames = np.stack(list(read_frames(synthetic_clip)))
    assert frames.shape == (25, 256, 256, 3) and frames.dtype == np.uint8
    assert psnr(frames, expected_frames(25, (320, 240))) > 30


def test_read_frames_with_crop_and_size(synthetic_clip: Path) -> None:
    box = CropBox(100, 20, 200)
    frames = np.stack(list(read_frames(synthetic_clip, size=96, crop=box, max_frames=6)))
    assert frames.shape == (6, 96, 96, 3)
    assert psnr(frames, expected_frames(6, (320, 240), 96, box)) > 30


def test_crop_past_the_edge_is_padded(synthetic_clip: Path) -> None:
    box = CropBox(-40, -60, 200)
    frames = np.stack(list(read_frames(synthetic_clip, size=64, crop=box, max_frames=3)))
    assert psnr(frames, expected_frames(3, (320, 240), 64, box)) > 30


def test_crop_missing_the_frame_is_an_input_error(synthetic_clip: Path) -> None:
    with pytest.raises(InputError, match="outside the 320x240 frame") as info:
        next(read_frames(synthetic_clip, crop=CropBox(320, 0, 100)))
    assert str(synthetic_clip) in str(info.value)


def test_max_frames(synthetic_clip: Path) -> None:
    assert len(list(read_frames(synthetic_clip, size=32, max_frames=5))) == 5
    assert len(list(read_frames(synthetic_clip, size=32, max_frames=1))) == 1
    assert len(list(read_frames(synthetic_clip, size=32, max_frames=100))) == 25
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_frames"):
            read_frames(synthetic_clip, max_frames=bad)
    with pytest.raises(ValueError, match="size"):
        read_frames(synthetic_clip, size=0)


def test_read_frames_streams(make_clip: Callable[..., Path]) -> None:
    path = make_clip(frames=60)
    frames = read_frames(path, size=128)
    assert inspect.isgenerator(frames)
    whole_clip = 60 * 128 * 128 * 3
    tracemalloc.start()
    try:
        count = sum(1 for _ in frames)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 60
    assert peak < whole_clip / 3, f"reading held {peak} bytes at once"


def test_reading_can_stop_early(synthetic_clip: Path) -> None:
    frames = read_frames(synthetic_clip, size=32)
    next(frames)
    frames.close()
    with pytest.raises(StopIteration):
        next(frames)


@pytest.mark.parametrize(
    "options",
    [
        {"pix_fmt": "yuvj420p"},
        {"pix_fmt": "yuv420p10le"},
        {"pix_fmt": "yuv444p"},
        {"size": (321, 241)},
        {"size": (240, 320)},
    ],
    ids=["yuvj420p", "10-bit", "yuv444p", "odd-size", "portrait"],
)
def test_reads_other_pixel_formats_and_sizes(
    make_clip: Callable[..., Path], options: dict[str, object]
) -> None:
    path = make_clip(frames=4, **options)
    size = options.get("size", (320, 240))
    info = probe_video(path)
    assert (info.width, info.height) == size
    frames = np.stack(list(read_frames(path, size=128)))
    assert psnr(frames, expected_frames(4, size, 128)) > 30


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_display_rotation_is_applied(make_clip: Callable[..., Path], rotation: int) -> None:
    path = make_clip(frames=3, rotation=rotation)
    info = probe_video(path)
    upright = (240, 320) if rotation % 180 else (320, 240)
    assert (info.width, info.height, info.rotation) == (*upright, rotation % 360)
    turned = [np.ascontiguousarray(np.rot90(f, rotation // 90)) for f in talking_head_frames(3)]
    expected = np.stack([crop_and_resize(f, centre_square(*upright), 128) for f in turned])
    frames = np.stack(list(read_frames(path, size=128)))
    assert psnr(frames, expected) > 30


def test_non_square_pixels_are_stretched(make_clip: Callable[..., Path]) -> None:
    path = make_clip(frames=3, sample_aspect_ratio=Fraction(3, 4))
    info = probe_video(path)
    assert (info.width, info.height) == (240, 240)
    squeezed = [
        np.asarray(Image.fromarray(f).resize((240, 240), Image.Resampling.LANCZOS))
        for f in talking_head_frames(3)
    ]
    frames = np.stack(list(read_frames(path, size=240)))
    assert psnr(frames, np.stack(squeezed)) > 30


def test_iter_batches_groups_frames() -> None:
    frames = (np.full((4, 5, 3), i, np.uint8) for i in range(7))
    batches = list(iter_batches(frames, 3))
    assert [b.shape for b in batches] == [(3, 4, 5, 3), (3, 4, 5, 3), (1, 4, 5, 3)]
    assert [int(b[i, 0, 0, 0]) for b in batches for i in range(len(b))] == list(range(7))
    assert list(iter_batches(iter([]), 2)) == []
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_batches(iter([]), 0))


def test_iter_batches_of_a_clip(synthetic_clip: Path) -> None:
    batches = iter_batches(read_frames(synthetic_clip, size=64), 8)
    assert [len(b) for b in batches] == [8, 8, 8, 1]


# Bad inputs


def _write_audio_only(path: Path) -> None:
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\0\0" * 800)


def _no_frames(path: Path) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()


def _zero_mdat(path: Path) -> None:
    synthetic_talking_head(path, frames=3, size=(64, 64))
    data = bytearray(path.read_bytes())
    start = data.find(b"mdat") - 4
    size = int.from_bytes(data[start : start + 4], "big")
    data[start + 8 : start + size] = bytes(size - 8)
    path.write_bytes(bytes(data))


def _truncate(path: Path, faststart: bool, keep: Callable[[Path], int]) -> None:
    """Write a 10-frame clip (index first with ``faststart``) and keep ``keep(path)`` bytes."""
    if faststart:
        with VideoWriter(path, 25) as writer:
            writer.write(talking_head_frames(10, (128, 128)))
    else:
        synthetic_talking_head(path, frames=10, size=(128, 128))
    data = path.read_bytes()
    path.write_bytes(data[: keep(path)])


def _into_packet_6(path: Path) -> int:
    with av.open(str(path)) as container:
        starts = sorted(p.pos for p in container.demux(video=0) if p.size)
    return starts[6] + 1


def make_bad_input(case: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """Create the bad input file ``case`` and return its path."""
    path = tmp_path / f"{case}.mp4"
    if case == "missing":
        return path
    if case == "directory":
        path.mkdir()
    elif case in ("not_a_video", "empty_file"):
        return request.getfixturevalue(case)
    elif case == "png":
        path = tmp_path / "still.png"
        Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(path)
    elif case == "audio_only":
        path = tmp_path / "speech.wav"
        _write_audio_only(path)
    elif case == "no_frames":
        _no_frames(path)
    elif case == "no_frames_mkv":
        path = tmp_path / "no_frames.mkv"
        _no_frames(path)
    elif case == "garbage_frames":
        _zero_mdat(path)
    elif case == "truncated_index":
        _truncate(path, False, lambda p: p.stat().st_size // 2)
    elif case == "truncated_header":
        _truncate(path, True, lambda p: 200)
    elif case == "truncated_data":
        _truncate(path, True, _into_packet_6)
    else:
        raise AssertionError(case)
    return path


BAD_EVERYWHERE = [
    "missing",
    "directory",
    "not_a_video",
    "empty_file",
    "png",
    "audio_only",
    "no_frames",
    "no_frames_mkv",
    "garbage_frames",
    "truncated_index",
    "truncated_header",
]


def _probe(path: Path) -> None:
    probe_video(path)


def _read_all(path: Path) -> None:
    for _ in read_frames(path, size=32):
        pass


@pytest.mark.parametrize("read", [_probe, _read_all], ids=["probe", "read"])
@pytest.mark.parametrize("case", BAD_EVERYWHERE)
def test_bad_input_is_an_input_error(
    case: str, read: Callable[[Path], None], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    path = make_bad_input(case, tmp_path, request)
    with pytest.raises(InputError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_truncated_data_fails_when_reached(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    path = make_bad_input("truncated_data", tmp_path, request)
    assert probe_video(path).frame_count == 10
    frames = read_frames(path, size=32)
    assert len([next(frames) for _ in range(3)]) == 3
    with pytest.raises(InputError, match="damaged or truncated"):
        list(frames)


def test_still_image_and_audio_messages(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with pytest.raises(InputError, match="still image"):
        probe_video(make_bad_input("png", tmp_path, request))
    with pytest.raises(InputError, match="not a video"):
        probe_video(make_bad_input("audio_only", tmp_path, request))


# Writing


def test_encoders_available() -> None:
    assert pick_encoder() in LOSSY_ENCODERS
    assert pick_encoder(lossless=True) in LOSSLESS_ENCODERS


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(30000, 1001), Fraction(50)])
def test_round_trip(tmp_path: Path, fps: Fraction) -> None:
    frames = talking_head_frames(12, (256, 256))
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps, size=(256, 256)) as writer:
        writer.write(frames[:5])
        for frame in frames[5:]:
            writer.write(frame)
    assert list(tmp_path.iterdir()) == [out]
    info = probe_video(out)
    assert (info.width, info.height, info.fps, info.frame_count) == (256, 256, fps, 12)
    assert info.duration == pytest.approx(12 / fps, abs=0.03)
    back = np.stack(list(read_frames(out)))
    assert back.shape == frames.shape
    assert psnr(back, frames) > 30


@pytest.mark.parametrize("codec", [None, *LOSSLESS_ENCODERS])
def test_lossless_round_trip_is_exact(tmp_path: Path, codec: str | None) -> None:
    if codec and not has_encoder(codec):
        pytest.skip(f"PyAV has no {codec} encoder")
    frames = np.random.default_rng(1).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    out = tmp_path / "lossless.mp4"
    with VideoWriter(out, 25, codec=codec, lossless=True) as writer:
        writer.write(frames)
    np.testing.assert_array_equal(np.stack(list(read_frames(out, size=64))), frames)


@pytest.mark.parametrize("codec", LOSSY_ENCODERS)
def test_lossy_encoders(tmp_path: Path, codec: str) -> None:
    if not has_encoder(codec):
        pytest.skip(f"PyAV has no {codec} encoder")
    frames = talking_head_frames(6, (128, 128))
    out = tmp_path / "lossy.mp4"
    with VideoWriter(out, 25, codec=codec) as writer:
        writer.write(frames)
    assert psnr(np.stack(list(read_frames(out, size=128))), frames) > 30


@pytest.mark.parametrize("suffix", [".mkv", ".mov"])
def test_other_containers(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    with VideoWriter(out, 30) as writer:
        writer.write(talking_head_frames(3, (64, 64)))
    assert probe_video(out).fps == 30
    assert len(list(read_frames(out, size=64))) == 3


def test_odd_frame_size(tmp_path: Path) -> None:
    frames = talking_head_frames(3, (65, 49))
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 25) as writer:
        writer.write(frames)
    info = probe_video(out)
    assert (info.width, info.height) == (65, 49)
    with (
        pytest.raises(ValueError, match="even"),
        VideoWriter(tmp_path / "odd_mpeg4.mp4", 25, size=(65, 49), codec="mpeg4"),
    ):
        pass
    assert list(tmp_path.iterdir()) == [out]


def test_exception_inside_the_block_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(out, 25) as writer:
        writer.write(talking_head_frames(3, (64, 64)))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_keyboard_interrupt_leaves_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), VideoWriter(out, 25, overwrite=True) as writer:
        writer.write(talking_head_frames(2, (64, 64)))
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == [out] and out.read_bytes() == b"old"


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        VideoWriter(out, 25)
    assert out.read_bytes() == b"old"
    with VideoWriter(out, 25, overwrite=True) as writer:
        writer.write(talking_head_frames(2, (64, 64)))
    assert probe_video(out).frame_count == 2


def test_no_frames_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FomcError, match="no frames"), VideoWriter(tmp_path / "out.mp4", 25):
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((64, 64, 3), np.float32),
        np.zeros((64, 64, 4), np.uint8),
        np.zeros((64, 64), np.uint8),
        np.zeros((32, 64, 3), np.uint8),
    ],
    ids=["float", "rgba", "grey", "wrong-size"],
)
def test_bad_frames_are_rejected(tmp_path: Path, frame: np.ndarray) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(ValueError), VideoWriter(out, 25, size=(64, 64)) as writer:
        writer.write(frame)
    assert list(tmp_path.iterdir()) == []


def test_bad_writer_arguments(tmp_path: Path) -> None:
    with pytest.raises(FomcError, match="unsupported video file type"):
        VideoWriter(tmp_path / "out.avi", 25)
    with pytest.raises(FomcError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "out.mp4", 25)
    with pytest.raises(ValueError, match="unsupported video codec"):
        VideoWriter(tmp_path / "out.mp4", 25, codec="rawvideo")
    with pytest.raises(ValueError, match="not lossless"):
        VideoWriter(tmp_path / "out.mp4", 25, codec="libx264", lossless=True)
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "out.mp4", 0)
    with pytest.raises(RuntimeError, match="outside"):
        VideoWriter(tmp_path / "out.mp4", 25).write(np.zeros((8, 8, 3), np.uint8))


# Real clips


def test_real_clips(shared_dir: Path) -> None:
    clips = shared_dir / "data" / "clips"
    manifest = json.loads((shared_dir / "data" / "manifest.json").read_text())
    by_codec = {entry["codec"]: entry for entry in reversed(manifest)}
    for entry in by_codec.values():
        path = clips / entry["file"]
        info = probe_video(path)
        assert float(info.fps) == pytest.approx(entry["fps"], abs=0.01)
        frames = np.stack(list(read_frames(path, max_frames=3)))
        assert frames.shape == (3, 256, 256, 3)
        assert frames.std() > 5


def test_atomic_outputs_get_the_usual_file_mode(tmp_path: Path) -> None:
    import os

    from fomcodec.fileio import write_bytes_atomic

    mask = os.umask(0o022)
    try:
        path = write_bytes_atomic(tmp_path / "out.bin", b"data")
    finally:
        os.umask(mask)
    assert path.read_bytes() == b"data"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
