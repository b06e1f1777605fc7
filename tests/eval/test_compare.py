"""`fomc compare` on a 1-second synthetic clip with a tiny model, the baselines, BD-rate."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import synthetic_talking_head, talking_head_frames

from fomcodec.cli.commands import compare_command
from fomcodec.codec.bitstream import DEFAULT_MOTION_STRIDE
from fomcodec.codec.image_codec import DEFAULT_QUALITY
from fomcodec.eval import compare
from fomcodec.eval.baselines import BaselineConfig, available_codecs, encode_decode
from fomcodec.eval.compare import Measurement
from fomcodec.eval.metrics import METRICS, vmaf_available
from fomcodec.zoo import build_model, get_config, save_weights

pytestmark = pytest.mark.skipif(
    not all(available_codecs().values()), reason="PyAV here lacks libsvtav1 or libx264"
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("compare")


@pytest.fixture(scope="module")
def weights(workdir: Path) -> Path:
    torch.manual_seed(0)
    return save_weights(build_model(get_config("tiny-256")), workdir / "tiny.safetensors")


@pytest.fixture(scope="module")
def clip(workdir: Path) -> Path:
    return synthetic_talking_head(workdir / "talking_head.mp4")  # 25 frames, 1 s


ARGS = [
    "--fomc-point",
    "q=20,stride=2,vs=2000,js=250",
    "--fomc-point",
    "q=60",
    "--base-point",
    "q=20,size=64,crf=40,fps=2",
    "--base-point",
    "q=20,size=128,crf=40,fps=1",
    "--av1-crf",
    "63,40",
    "--h264-crf",
    "51,30",
    "--ladder",
    "256/1,128/2",
    "--device",
    "cpu",
    "--threads",
    "1",
]


@pytest.fixture(scope="module")
def compared(workdir: Path, weights: Path, clip: Path):
    out = workdir / "out"
    result = CliRunner().invoke(
        compare_command, [str(clip), "--out", str(out), "--model", str(weights), *ARGS]
    )
    assert result.exit_code == 0, result.output
    return out, result, json.loads((out / "results.json").read_text())


def rows_of(document: dict, codec: str) -> list[dict]:
    return [r for r in document["rows"] if r["codec"] == codec]


def test_every_output_file_is_written(compared) -> None:
    out, _, document = compared
    metrics = list(METRICS) if vmaf_available() else list(METRICS[:4])
    expected = compare.output_names(metrics, ["fomc", "fomc-base", "av1", "h264", "still"])
    for name in expected:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for metric in metrics:
        assert (out / f"rd-{metric}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    assert document["command"].startswith("fomc ")
    assert document["settings"]["ladder"] == ["256/1", "128/2"]


def test_results_json_has_compressai_shape(compared) -> None:
    out, _, document = compared
    block = json.loads((out / "av1.json").read_text())
    assert block["name"] == "av1" and "libsvtav1" in block["description"]
    results = block["results"]
    lengths = {len(v) for v in results.values()}
    assert lengths == {4}  # 2 CRFs x 2 rungs, parallel arrays
    for key in ("kbps", "bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"):
        assert key in results
    assert document["codecs"]["fomc"]["results"]["kbps"]


def test_rates_grow_with_quality_and_counts_are_honest(compared) -> None:
    _, _, document = compared
    fomc = {r["quality"]: r for r in rows_of(document, "fomc")}
    assert fomc[60]["bytes"] > fomc[20]["bytes"]
    for row in document["rows"]:
        assert 0 < row["payload_bytes"] <= row["bytes"]
        assert row["frames"] == 25 and row["duration_s"] == pytest.approx(1.0)
        assert row["kbps"] == pytest.approx(row["bytes"] * 8 / 1000, rel=1e-3)
    for codec in ("av1", "h264"):
        rows = rows_of(document, codec)
        assert all(r["keyframes"] == 1 for r in rows)
        for size in (256, 128):
            by_crf = sorted((r for r in rows if r["size"] == size), key=lambda r: r["crf"])
            low_crf, high_crf = by_crf[0], by_crf[-1]
            assert low_crf["bytes"] > high_crf["bytes"]
            assert low_crf["psnr-rgb"] > high_crf["psnr-rgb"]
        full = {r["crf"]: r for r in rows if r["size"] == 256}
        small = {r["crf"]: r for r in rows if r["size"] == 128}
        assert all(small[crf]["payload_bytes"] < full[crf]["payload_bytes"] for crf in full)


def test_base_layer_points_form_their_own_curve(compared) -> None:
    out, result, document = compared
    small, large = sorted(rows_of(document, "fomc-base"), key=lambda r: r["size"])
    assert (small["size"], small["fps_divisor"], large["size"]) == (64, 2, 128)
    assert small["bytes"] < large["bytes"] and small["psnr-rgb"] < large["psnr-rgb"]
    tests = {b["test"] for b in document["bd_rate"]}
    assert tests == {"fomc", "fomc-base"}
    assert "fomc-base" in result.stdout and "fomc-base" in (out / "summary.md").read_text()


def test_metric_values_are_sane(compared) -> None:
    _, _, document = compared
    for row in document["rows"]:
        assert 5 < row["psnr-rgb"] <= 100 and 5 < row["psnr-y"] <= 100
        assert 0 < row["ssim-rgb"] <= 1 and 0 <= row["ms-ssim-rgb"] <= 1
        if "vmaf" in row and row["vmaf"] != "":
            assert 0 <= row["vmaf"] <= 100
    best_av1 = max(r["psnr-rgb"] for r in rows_of(document, "av1"))
    assert best_av1 > 33  # AV1 at CRF 40 on a smooth synthetic clip


def test_csv_and_terminal_table(compared) -> None:
    out, result, document = compared
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(document["rows"]) * 2  # one clip: every row plus its mean
    assert {r["clip"] for r in rows} == {"talking_head.mp4", compare.MEAN_CLIP}
    assert "codec" in result.stdout and "fomc" in result.stdout and "BD-rate" in result.stdout
    assert "fomc vs" in (out / "summary.md").read_text()


def test_refuses_to_overwrite_without_y(compared, weights: Path, clip: Path) -> None:
    out, _, _ = compared
    result = CliRunner().invoke(
        compare_command, [str(clip), "--out", str(out), "--model", str(weights), *ARGS]
    )
    assert result.exit_code == 1
    assert "already exists" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--fomc-point", "q=abc"],
        ["--ladder", "255/1"],
        ["--av1-crf", "70"],
        ["--fomc-point", "zoom=3"],
        ["--base-point", "size=63"],
        ["--base-point", "fps=5"],
    ],
)
def test_bad_options_are_usage_errors(clip: Path, tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(compare_command, [str(clip), "--out", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


# --- baselines ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return talking_head_frames(10, (256, 256))


@pytest.mark.parametrize("codec", ["av1", "h264"])
def test_baseline_round_trip_keeps_frame_count(frames: np.ndarray, codec: str) -> None:
    run = encode_decode(
        frames, 25, BaselineConfig(codec, 40 if codec == "h264" else 50, 64, 3), threads=1
    )
    assert run.frames.shape == frames.shape and run.frames.dtype == np.uint8
    assert run.coded_frames == 4 and run.keyframes == 1
    coded = run.frames[::3].astype(np.float64)
    blend = coded[0] + (coded[1] - coded[0]) / 3  # the dropped frames are blended
    assert np.abs(run.frames[1] - blend).max() <= 1
    assert 0 < run.payload_bytes < run.file_bytes == len(run.data)


def test_x264_version_sei_is_not_counted(frames: np.ndarray) -> None:
    run = encode_decode(frames, 25, BaselineConfig("h264", 30), threads=1)
    assert b"x264 - core" not in run.data


def test_baseline_config_checks() -> None:
    with pytest.raises(ValueError):
        BaselineConfig("vp9", 30)
    with pytest.raises(ValueError):
        BaselineConfig("av1", 0)
    with pytest.raises(ValueError):
        BaselineConfig("h264", 30, size=100 + 1)
    assert BaselineConfig("h264", 30, 128, 2).label == "crf30 128px /2"


# --- curves and BD-rate -------------------------------------------------------------------


def row(codec: str, kbps: float, psnr: float, config: str = "") -> Measurement:
    size = kbps * 1000 / 8
    return Measurement(
        "clip", codec, config or f"{kbps}", {}, 25, 1.0, size, size, {"psnr-rgb": psnr}, 0.0, 0.0
    )


def test_pareto_front_keeps_only_undominated_points() -> None:
    rates = [10, 20, 15, 30, 30, 40]
    values = [30, 33, 29, 35, 36, 34]
    assert compare.pareto_front(rates, values) == [0, 1, 4]


def test_bd_rate_of_a_curve_at_half_the_rate_is_minus_50_percent() -> None:
    anchor = [row("h264", r, p) for r, p in [(10, 30), (20, 33), (40, 36), (80, 39)]]
    test = [row("fomc", r / 2, p) for r, p in [(10, 30), (20, 33), (40, 36), (80, 39)]]
    result = compare.bd_rate(anchor + test, "h264", "psnr-rgb")
    assert result.value == pytest.approx(-50, abs=0.5)
    assert result.overlap == pytest.approx(1.0) and result.problem is None


def test_barely_overlapping_curves_warn() -> None:
    anchor = [row("av1", r, p) for r, p in [(10, 30), (20, 33), (40, 36), (80, 39)]]
    test = [row("fomc", r, p) for r, p in [(2, 25), (4, 28), (8, 31)]]
    rows = anchor + test
    result = compare.bd_rate(rows, "av1", "psnr-rgb")
    assert result.value is not None and result.problem == "overlap"
    assert 0 < result.overlap < compare.MIN_OVERLAP
    warnings = compare.bd_warnings([result])
    assert len(warnings) == 1 and "barely overlap" in warnings[0]


def test_disjoint_curves_give_no_bd_rate() -> None:
    anchor = [row("av1", r, p) for r, p in [(10, 30), (20, 33)]]
    test = [row("fomc", r, p) for r, p in [(2, 20), (4, 22)]]
    result = compare.bd_rate(anchor + test, "av1", "psnr-rgb")
    assert result.value is None and result.problem == "no-overlap"
    single = compare.bd_rate(anchor + test[:1], "av1", "psnr-rgb")
    assert single.value is None and single.problem == "points"


def test_mean_rows_average_over_clips() -> None:
    a = row("fomc", 10, 30, "q30")
    b = Measurement("other", "fomc", "q30", {}, 50, 2.0, 5000, 4000, {"psnr-rgb": 34}, 1.0, 3.0)
    (mean,) = compare.mean_rows([a, b])
    assert mean.clip == compare.MEAN_CLIP
    assert mean.kbps == pytest.approx((10 + 20) / 2)
    assert mean.metrics["psnr-rgb"] == pytest.approx(32)
    assert math.isclose(mean.decode_seconds, 1.5)


def test_fomc_point_parsing() -> None:
    point = compare.FomcPoint.parse("q=45, stride=2, vs=2000, js=200")
    assert point == compare.FomcPoint(45, 2, 2000, 200)
    assert compare.FomcPoint.parse("") == compare.FomcPoint()
    default = compare.FomcPoint()  # the encoder's defaults
    assert (default.quality, default.motion_stride) == (DEFAULT_QUALITY, DEFAULT_MOTION_STRIDE)
    assert compare.parse_ladder("256,128/2") == ((256, 1), (128, 2))
    with pytest.raises(ValueError):
        compare.FomcPoint.parse("q=101")


def test_base_point_parsing() -> None:
    point = compare.BasePoint.parse("q=20, size=96, crf=45, fps=1")
    assert point == compare.BasePoint(20, 96, 45, 1) and point.label == "q20 96px crf45"
    assert compare.BasePoint.parse("") == compare.BasePoint()
    assert compare.BasePoint.parse("fps=2").label.endswith(" /2")
    detail = compare.BasePoint.parse("size=64, fuser=detail")
    assert detail.fuser == "detail" and detail.settings.fuser == "detail"
    assert detail.label.endswith(" detail") and "fuse" not in compare.BasePoint().label
    with pytest.raises(ValueError, match="expected"):
        compare.BasePoint.parse("crf")
    adaptive = compare.BasePoint.parse("fps=8, adapt=28.5")
    assert adaptive.settings.adapt_db == 28.5 and adaptive.label.endswith(" /8 adapt28.5")
    with pytest.raises(ValueError, match="adapt must be a number"):
        compare.BasePoint.parse("adapt=high")
    with pytest.raises(ValueError, match="power-of-two"):
        compare.BasePoint.parse("fps=3, adapt=30")


def test_fomc_points_name_their_motion_coding() -> None:
    from fomcodec.codec import bitstream as bs
    from fomcodec.eval.compare import DEFAULT_FOMC_POINTS, FomcPoint

    seed = FomcPoint.parse("q=30,coding=lzma2")
    assert seed.quantization() is None  # the encoder's own: x10000 / x1000 for lzma2
    assert seed.label == "q30 stride2 lzma2"
    default = FomcPoint.parse("q=30")
    assert default.coding == bs.DEFAULT_MOTION_CODING == "range"
    assert default.quantization() is None and default.label == "q30 stride2"
    coarse = FomcPoint.parse("q=30,vs=40")
    assert coarse.quantization() == bs.quantization_for("range", 40, None)
    assert coarse.label == "q30 stride2 vs40"
    assert {p.coding for p in DEFAULT_FOMC_POINTS} == {"range", "lzma2"}
    with pytest.raises(ValueError, match="motion coding"):
        FomcPoint.parse("q=30,coding=zip")


def test_fomc_points_set_keyframe_refresh() -> None:
    from fomcodec.codec.keyframes import DEFAULT_REFRESH_DB
    from fomcodec.eval.compare import FomcPoint

    assert FomcPoint.parse("q=30").refresh_db == DEFAULT_REFRESH_DB
    single = FomcPoint.parse("q=30,refresh=0")
    assert single.refresh_db == 0 and single.label.endswith("refresh0")
    assert "refresh" not in FomcPoint.parse("q=30").label
    assert FomcPoint.parse("refresh=1.5").refresh_db == 1.5
    with pytest.raises(ValueError, match="refresh must be a number"):
        FomcPoint.parse("refresh=often")
    with pytest.raises(ValueError, match=">= 0"):
        FomcPoint(refresh_db=-1)
