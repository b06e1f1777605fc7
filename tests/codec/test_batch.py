"""`fomc batch`: folders both ways, resume after an interruption, broken files reported."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import synthetic_talking_head

from fomcodec.cli.commands import batch_command
from fomcodec.codec import batch
from fomcodec.codec import bitstream as bs
from fomcodec.codec.batch import BatchOptions, BatchProgress, run_batch
from fomcodec.media.video_io import probe_video
from fomcodec.zoo import build_model, get_config, save_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("batch-model")
    return save_weights(build_model(get_config("tiny-256")), folder / "tiny.safetensors")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """A folder of two short clips and a broken one (kept pristine: tests copy it)."""
    folder = tmp_path_factory.mktemp("batch-clips")
    synthetic_talking_head(folder / "a.mp4", frames=10)
    synthetic_talking_head(folder / "b.mp4", frames=12, size=(256, 192))
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    (folder / "notes.txt").write_text("not a clip, ignored\n")
    return folder


@pytest.fixture
def in_dir(clips: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(clips, tmp_path / "in"))


def invoke(*args: str):
    return CliRunner().invoke(batch_command, list(args))


def convert(source: Path, out: Path, weights: Path, *options: str):
    """``fomc batch SOURCE -o OUT`` with the test model on the CPU."""
    return invoke(str(source), "-o", str(out), "--model", str(weights), "--device", "cpu", *options)


def summary_of(out: Path) -> dict:
    return json.loads((out / batch.SUMMARY_JSON).read_text())


def by_name(document: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in document["clips"]}


def no_partial_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".part" in p.name]


def test_encode_folder_reports_the_broken_clip_and_goes_on(
    in_dir: Path, tmp_path: Path, weights: Path
) -> None:
    out = tmp_path / "out"
    result = convert(in_dir, out, weights)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "1 clip(s) failed" in result.stderr and "broken.mp4" in result.stderr.splitlines()[-1]
    for name in ("a", "b"):
        data, stream = bs.read(out / f"{name}.fomc")
        assert stream.header.frame_count == {"a": 10, "b": 12}[name]
    assert not (out / "broken.fomc").exists() and no_partial_files(out)
    document = summary_of(out)
    entries = by_name(document)
    assert document["mode"] == "encode" and document["totals"]["failed"] == 1
    assert entries["broken.mp4"]["status"] == "failed" and entries["broken.mp4"]["error"]
    assert document["failures"] == [{"name": "broken.mp4", "error": entries["broken.mp4"]["error"]}]
    a = entries["a.mp4"]
    assert a["status"] == "done" and a["frames"] == 10 and a["duration_s"] == pytest.approx(0.4)
    assert a["bytes"] == (out / "a.fomc").stat().st_size
    assert a["kbps"] == pytest.approx(a["bytes"] * 8 / 1000 / 0.4, rel=1e-3)
    assert a["seconds"] > 0 and a["crop"] == "centre"
    with open(out / batch.SUMMARY_CSV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == ["a.mp4", "b.mp4", "broken.mp4"]


class InterruptingProgress(BatchProgress):
    """Presses Ctrl-C in the middle of clip ``victim``."""

    def __init__(self, total: int, victim: str) -> None:
        super().__init__(total, enabled=False)
        self.victim = victim

    def advance(self, name: str, frames: int) -> None:
        super().advance(name, frames)
        if name == self.victim:
            raise KeyboardInterrupt


def test_interrupted_batch_resumes(in_dir: Path, tmp_path: Path, weights: Path) -> None:
    (in_dir / "broken.mp4").unlink()
    out = tmp_path / "out"
    options = BatchOptions(mode="encode", model=str(weights), device="cpu")
    with pytest.raises(KeyboardInterrupt):
        run_batch(in_dir, out, options, progress=InterruptingProgress(2, victim="b.mp4"))
    assert bs.read(out / "a.fomc")[1].header.frame_count == 10
    assert not (out / "b.fomc").exists() and no_partial_files(out)
    first = summary_of(out)
    assert first["interrupted"] and [e["name"] for e in first["clips"]] == ["a.mp4"]
    stamp = (out / "a.fomc").stat().st_mtime_ns

    summary = run_batch(in_dir, out, options)
    statuses = {r.name: r.status for r in summary.results}
    assert statuses == {"a.mp4": "skipped", "b.mp4": "done"}
    assert (out / "a.fomc").stat().st_mtime_ns == stamp  # not redone
    entries = by_name(summary_of(out))
    assert entries["a.mp4"]["seconds"] == by_name(first)["a.mp4"]["seconds"]  # carried over
    assert entries["b.mp4"]["frames"] == 12 and not summary_of(out)["interrupted"]


def test_invalid_existing_output_is_redone(in_dir: Path, tmp_path: Path, weights: Path) -> None:
    (in_dir / "broken.mp4").unlink()
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.fomc").write_bytes(b"FOMC\x01truncated")
    summary = run_batch(in_dir, out, BatchOptions(model=str(weights), device="cpu"))
    assert {r.name: r.status for r in summary.results} == {"a.mp4": "done", "b.mp4": "done"}
    assert bs.read(out / "a.fomc")[1].header.frame_count == 10


def test_decode_folder_and_resume(in_dir: Path, tmp_path: Path, weights: Path) -> None:
    (in_dir / "broken.mp4").unlink()
    streams, videos = tmp_path / "streams", tmp_path / "videos"
    assert convert(in_dir, streams, weights, "--quiet").exit_code == 0
    assert batch.detect_mode(streams) == "decode"
    result = convert(streams, videos, weights)
    assert result.exit_code == 0, result.output
    assert probe_video(videos / "a.mp4").frame_count == 10
    assert probe_video(videos / "b.mp4").frame_count == 12
    document = summary_of(videos)
    assert document["mode"] == "decode" and document["totals"]["done"] == 2
    entry = by_name(document)["a.fomc"]
    assert entry["bytes"] == (streams / "a.fomc").stat().st_size
    assert entry["output_bytes"] == (videos / "a.mp4").stat().st_size
    again = convert(streams, videos, weights)
    assert again.exit_code == 0 and "2 skipped" in again.stderr


def test_metrics_and_crops_in_the_summary(in_dir: Path, tmp_path: Path, weights: Path) -> None:
    (in_dir / "broken.mp4").unlink()
    crops = tmp_path / "crops.json"
    crops.write_text(json.dumps({"b.mp4": "10,0,180"}))
    out = tmp_path / "out"
    result = convert(
        in_dir,
        out,
        weights,
        "--metrics",
        "--crops",
        str(crops),
        "--frames",
        "8",
    )
    assert result.exit_code == 0, result.output
    entries = by_name(summary_of(out))
    assert entries["b.mp4"]["crop"] == "10,0,180" and entries["a.mp4"]["crop"] == "centre"
    for entry in entries.values():
        assert entry["frames"] == 8
        assert 5 < entry["quality"]["psnr-rgb"] <= 100
        assert 0 < entry["quality"]["ms-ssim-rgb"] <= 1
    with open(out / batch.SUMMARY_CSV, newline="") as handle:
        assert "psnr-rgb" in next(csv.reader(handle))


class InterruptOnFirstEvent(BatchProgress):
    def __init__(self, total: int) -> None:
        super().__init__(total, slots=2, enabled=False)

    def event(self, event: str, name: str, frames: int) -> None:
        if event == "advance":
            raise KeyboardInterrupt


def test_parallel_jobs_interrupted_then_resumed(
    in_dir: Path, tmp_path: Path, weights: Path
) -> None:
    out = tmp_path / "out"
    options = BatchOptions(mode="encode", model=str(weights), device="cpu", threads=1)
    with pytest.raises(KeyboardInterrupt):
        run_batch(in_dir, out, options, jobs=2, progress=InterruptOnFirstEvent(3))
    assert no_partial_files(out) and summary_of(out)["interrupted"]
    result = convert(
        in_dir,
        out,
        weights,
        "--jobs",
        "2",
        "--threads",
        "1",
    )
    assert result.exit_code == 1, result.output  # broken.mp4
    statuses = {e["name"]: e["status"] for e in summary_of(out)["clips"]}
    assert statuses["broken.mp4"] == "failed"
    assert {statuses["a.mp4"], statuses["b.mp4"]} <= {"done", "skipped"}
    assert bs.read(out / "a.fomc")[1].header.frame_count == 10
    assert bs.read(out / "b.fomc")[1].header.frame_count == 12


def test_mode_detection_and_empty_folders(tmp_path: Path, clips: Path) -> None:
    mixed = Path(shutil.copytree(clips, tmp_path / "mixed"))
    (mixed / "x.fomc").write_bytes(b"FOMC")
    result = invoke(str(mixed), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1 and "--encode or --decode" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke(str(empty), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1 and "no video clips" in result.stderr
    assert invoke(str(mixed), "-o", str(tmp_path / "o"), "--decode", "--metrics").exit_code == 2


def test_encoder_knobs_reach_every_stream(in_dir: Path, tmp_path: Path, weights: Path) -> None:
    (in_dir / "broken.mp4").unlink()
    out = tmp_path / "out"
    result = convert(
        in_dir,
        out,
        weights,
        "--motion-stride",
        "4",
        "--value-scale",
        "300",
    )
    assert result.exit_code == 0, result.output
    for name in ("a", "b"):
        header = bs.read(out / f"{name}.fomc")[1].header
        assert header.motion_stride == 4
        assert header.quantization.value_scale == 300
        assert header.quantization.jacobian_scale == bs.DEFAULT_QUANTIZATION["range"].jacobian_scale
