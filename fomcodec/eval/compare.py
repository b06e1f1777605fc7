"""``fomc compare``: fomc against AV1 and H.264 at several rate points, on the same frames.

::

    clip --read_frames (centre crop, 256x256, first N frames)--> reference frames
      |-- fomc:  Encoder(quality, stride, quantisation) --pack--> bytes --unpack--> Decoder
      |-- fomc-base: Encoder(base layer size, CRF, frame-rate divisor; quality) likewise
      |-- still: source image alone (AVIF at fomc's qualities), repeated      (a reference)
      |-- av1 / h264: baselines.encode_decode over CRFs x ladder (size, frame-rate divisor)
      '--> QualityMeter (PSNR-Y, PSNR-RGB, SSIM, MS-SSIM, VMAF) per run --> Measurement rows
    rows --mean over clips per (codec, point)--> curves --Pareto front per metric-->
      BD-rate of fomc and fomc-base against each baseline (bjontegaard, Akima), RD plots,
      CSV, JSON, table

Bytes are counted the same way for everyone (see :mod:`fomcodec.eval.baselines`): ``bytes`` is the
whole file a user would store or send (the whole ``.fomc`` with header and source image; the
whole MP4), ``payload_bytes`` leaves the container out (fomc: header, image and motion
payloads without chunk framing, magic and CRCs; baselines: packets plus out-of-band
parameter sets). Rates are kbit/s over the clip's duration (frames / fps).

A codec's curve is the Pareto front of all its points for the metric at hand: the best
quality reachable at each rate over every CRF, size and frame rate tried (as adaptive
streaming ladders are built). BD-rate integrates over the quality range where both curves
exist; when that overlap is under :data:`MIN_OVERLAP` of their joint range a warning says the
number describes only a sliver of the curves.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from fomcodec.codec import bitstream as bs
from fomcodec.codec.base_layer import (
    DEFAULT_BASE_CRF,
    DEFAULT_BASE_SIZE,
    DEFAULT_FPS_DIVISOR,
    DEFAULT_FUSER,
    RATE_LADDER,
    BaseLayerSettings,
)
from fomcodec.codec.image_codec import DEFAULT_CODEC, DEFAULT_QUALITY, decode_image, encode_image
from fomcodec.codec.keyframes import DEFAULT_REFRESH_DB
from fomcodec.codec.quantization import QuantizationParams
from fomcodec.errors import FomcError, InputError
from fomcodec.eval.baselines import ENCODERS, BaselineConfig, available_codecs, encode_decode
from fomcodec.eval.landmarks import landmarks_available
from fomcodec.eval.metrics import LOWER_IS_BETTER, METRICS, QualityMeter, vmaf_available
from fomcodec.fileio import write_bytes_atomic
from fomcodec.media.video_io import probe_video, read_frames

FRAME_SIZE = 256
MIN_OVERLAP = 0.5
BD_METHOD = "akima"
MEAN_CLIP = "(mean)"
#: Output files :func:`write_outputs` writes besides one ``<codec>.json`` and ``rd-<metric>.png``
#: each.
RESULTS_JSON, RESULTS_CSV, SUMMARY_MD = "results.json", "results.csv", "summary.md"
METRIC_LABELS = {
    "psnr-y": "PSNR-Y (dB)",
    "psnr-rgb": "PSNR-RGB (dB)",
    "ssim-rgb": "SSIM",
    "ms-ssim-rgb": "MS-SSIM",
    "vmaf": "VMAF",
    "akd": "AKD (px, lower is better)",
}
CODEC_ORDER = ("fomc", "fomc-base", "av1", "h264", "still")
#: The codecs whose BD-rates against the baselines are reported.
TEST_CODECS = ("fomc", "fomc-base")
CODEC_STYLE = {
    "fomc": ("C0", "o"),
    "fomc-base": ("C3", "D"),
    "av1": ("C1", "s"),
    "h264": ("C2", "^"),
    "still": ("0.5", "x"),
}

Progress = Callable[[str], None]


def _parse_point(
    text: str,
    kind: str,
    expected: str,
    integers: dict[str, str],
    strings: dict[str, str],
    numbers: dict[str, str],
) -> dict[str, Any]:
    """The fields of a ``key=value,...`` rate point: each map takes a key to its field, read
    as an integer, a string or a float; a ValueError naming the ``kind`` of point otherwise."""
    fields: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = (x.strip() for x in part.partition("="))
        if not sep or key not in integers | strings | numbers:
            raise ValueError(f"{kind} point {text!r}: expected {expected}")
        if key in strings:
            fields[strings[key]] = value
            continue
        convert, what = (int, "an integer") if key in integers else (float, "a number")
        try:
            fields[(integers | numbers)[key]] = convert(value)
        except ValueError:
            raise ValueError(f"{kind} point {text!r}: {key} must be {what}") from None
    return fields


@dataclass(frozen=True)
class FomcPoint:
    """One fomc rate point: source-image quality, keypoint stride and quantisation (the
    defaults are the encoder's; scales left at None are the model's and coding's own)."""

    quality: int = DEFAULT_QUALITY
    motion_stride: int = bs.DEFAULT_MOTION_STRIDE
    value_scale: int | None = None
    jacobian_scale: int | None = None
    coding: str = bs.DEFAULT_MOTION_CODING
    refresh_db: float = DEFAULT_REFRESH_DB or 0.0  # keyframe refresh (0: one source image)

    _KEYS = {
        "q": "quality",
        "quality": "quality",
        "stride": "motion_stride",
        "motion_stride": "motion_stride",
        "vs": "value_scale",
        "value_scale": "value_scale",
        "js": "jacobian_scale",
        "jacobian_scale": "jacobian_scale",
    }

    def __post_init__(self) -> None:
        if not 0 <= self.quality <= 100:
            raise ValueError(f"image quality must be in 0..100, not {self.quality}")
        if not 1 <= self.motion_stride <= 255:
            raise ValueError(f"motion stride must be in 1..255, not {self.motion_stride}")
        QuantizationParams(self.value_scale or 1, self.jacobian_scale or 1)
        if self.coding not in bs.MOTION_CODINGS:
            raise ValueError(
                f"motion coding must be one of {bs.MOTION_CODINGS}, not {self.coding!r}"
            )
        if not self.refresh_db >= 0:
            raise ValueError(f"refresh must be >= 0 dB, not {self.refresh_db}")

    @classmethod
    def parse(cls, text: str) -> FomcPoint:
        """``"q=30,stride=2,vs=1000,js=100,coding=lzma2,refresh=2"`` (any subset; the rest
        default; vs and js default to the model's and coding's own; ``refresh`` in dB, 0 for
        none)."""
        expected = "q=N,stride=N,vs=N,js=N,coding=range|lzma2,refresh=DB"
        fields = _parse_point(
            text, "fomc", expected, cls._KEYS, {"coding": "coding"}, {"refresh": "refresh_db"}
        )
        return cls(**fields)

    def quantization(self) -> QuantizationParams | None:
        """The scales to encode with (None: the encoder's default for the model)."""
        if self.value_scale is None and self.jacobian_scale is None:
            return None
        return bs.quantization_for(self.coding, self.value_scale, self.jacobian_scale)

    @property
    def label(self) -> str:
        coding = "" if self.coding == bs.DEFAULT_MOTION_CODING else f" {self.coding}"
        refresh = (
            "" if self.refresh_db == (DEFAULT_REFRESH_DB or 0.0) else f" refresh{self.refresh_db:g}"
        )
        scales = "".join(
            f" {key}{value}"
            for key, value in (("vs", self.value_scale), ("js", self.jacobian_scale))
            if value is not None
        )
        return f"q{self.quality} stride{self.motion_stride}{scales}{coding}{refresh}"


#: From a still-like stream (motion every 4th frame, a small image) to a sharp image;
#: ``FomcPoint()`` (q15) is the encoder's default, and the seed's LZMA2 layout at q30 image
#: quality shows what the range-coded motion saves.
DEFAULT_FOMC_POINTS: tuple[FomcPoint, ...] = (
    FomcPoint(quality=10, motion_stride=4),
    FomcPoint(quality=15),
    FomcPoint(quality=30),
    FomcPoint(quality=45),
    FomcPoint(quality=60),
    FomcPoint.parse("q=30,coding=lzma2"),
)


@dataclass(frozen=True)
class BasePoint:
    """One rate point of fomc's base layer mode: source-image quality and the AV1 base
    layer's size, CRF, frame-rate divisor and adaptive frame-rate threshold (the defaults are
    the encoder's)."""

    quality: int = DEFAULT_QUALITY
    size: int = DEFAULT_BASE_SIZE
    crf: int = DEFAULT_BASE_CRF
    fps_divisor: int = DEFAULT_FPS_DIVISOR
    fuser: str = DEFAULT_FUSER
    adapt_db: float | None = None

    _KEYS = {"q": "quality", "size": "size", "crf": "crf", "fps": "fps_divisor"}

    def __post_init__(self) -> None:
        if not 0 <= self.quality <= 100:
            raise ValueError(f"image quality must be in 0..100, not {self.quality}")
        self.settings.check(FRAME_SIZE)

    @property
    def settings(self) -> BaseLayerSettings:
        return BaseLayerSettings(self.size, self.crf, self.fps_divisor, self.fuser, self.adapt_db)

    @classmethod
    def parse(cls, text: str) -> BasePoint:
        """``"q=15,size=64,crf=51,fps=2,fuser=detail,adapt=28"`` (any subset; ``fps``: the
        frame-rate divisor, the largest with ``adapt``, the adaptive frame rate's dB;
        ``fuser``: a learned fuser's name or ``detail``)."""
        expected = "q=N,size=N,crf=N,fps=N,fuser=NAME,adapt=DB"
        fields = _parse_point(
            text, "base", expected, cls._KEYS, {"fuser": "fuser"}, {"adapt": "adapt_db"}
        )
        return cls(**fields)

    @property
    def label(self) -> str:
        rate = f" /{self.fps_divisor}" if self.fps_divisor > 1 else ""
        if self.adapt_db is not None:
            rate = f" /{self.fps_divisor} adapt{self.adapt_db:g}"
        fuser = "" if self.fuser == DEFAULT_FUSER else f" {self.fuser}"
        return f"q{self.quality} {self.size}px crf{self.crf}{rate}{fuser}"


#: The rungs of ``fomc encode --kbps`` (from about 4 to about 28 kbit/s on 10-s talking heads).
DEFAULT_BASE_POINTS: tuple[BasePoint, ...] = tuple(
    BasePoint(p.image_quality, p.base.size, p.base.crf, p.base.fps_divisor)
    for p in RATE_LADDER
    if p.base is not None
)
DEFAULT_CRFS: dict[str, tuple[int, ...]] = {"av1": (63, 55, 47, 39), "h264": (51, 45, 39, 33)}
#: (coded size, frame-rate divisor) rungs every baseline CRF is run at.
DEFAULT_LADDER: tuple[tuple[int, int], ...] = ((256, 1), (128, 2), (64, 4))


def parse_ladder(text: str) -> tuple[tuple[int, int], ...]:
    """``"256/1,128/2,64/4"`` -> ((256, 1), (128, 2), (64, 4)); ``"/k"`` may be left out."""
    rungs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        size, _, divisor = part.partition("/")
        try:
            rung = (int(size), int(divisor or 1))
        except ValueError:
            raise ValueError(
                f"ladder {text!r}: expected SIZE/DIVISOR,... e.g. 256/1,128/2"
            ) from None
        BaselineConfig("h264", 30, *rung)  # validates size and divisor
        rungs.append(rung)
    if not rungs:
        raise ValueError("the ladder needs at least one SIZE/DIVISOR rung")
    return tuple(rungs)


@dataclass
class CompareSettings:
    """What ``fomc compare`` runs. ``frames`` None uses whole clips."""

    frames: int | None = 100
    fomc_points: tuple[FomcPoint, ...] = DEFAULT_FOMC_POINTS
    base_points: tuple[BasePoint, ...] = DEFAULT_BASE_POINTS
    codecs: tuple[str, ...] = ("av1", "h264")
    crfs: dict[str, tuple[int, ...]] = field(default_factory=lambda: dict(DEFAULT_CRFS))
    ladder: tuple[tuple[int, int], ...] = DEFAULT_LADDER
    presets: dict[str, str | None] = field(default_factory=dict)
    vmaf: bool = True
    akd: bool = True
    still: bool = True
    threads: int | None = None
    min_overlap: float = MIN_OVERLAP

    def baseline_configs(self, codec: str) -> list[BaselineConfig]:
        return [
            BaselineConfig(codec, crf, size, divisor, self.presets.get(codec))
            for size, divisor in self.ladder
            for crf in self.crfs[codec]
        ]

    def runs_per_clip(self) -> int:
        still = len({p.quality for p in self.fomc_points}) if self.still else 0
        return (
            len(self.fomc_points)
            + len(self.base_points)
            + still
            + sum(len(self.baseline_configs(codec)) for codec in self.codecs)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "fomc_points": [p.label for p in self.fomc_points],
            "base_points": [p.label for p in self.base_points],
            "codecs": list(self.codecs),
            "crfs": {c: list(self.crfs[c]) for c in self.codecs},
            "ladder": [f"{s}/{d}" for s, d in self.ladder],
            "presets": {c: self.presets.get(c) or ENCODERS[c][1] for c in self.codecs},
            "vmaf": self.vmaf,
            "akd": self.akd,
            "still": self.still,
            "threads": self.threads,
            "min_overlap": self.min_overlap,
            "bd_method": BD_METHOD,
        }


@dataclass
class Measurement:
    """One coded version of one clip: its sizes, quality and times (a row of results.csv)."""

    clip: str
    codec: str
    config: str
    params: dict[str, Any]
    frames: int
    duration: float
    bytes: float
    payload_bytes: float
    metrics: dict[str, float]
    encode_seconds: float
    decode_seconds: float

    @property
    def kbps(self) -> float:
        return self.bytes * 8 / 1000 / self.duration

    @property
    def payload_kbps(self) -> float:
        return self.payload_bytes * 8 / 1000 / self.duration

    @property
    def bpp(self) -> float:
        """Bits per pixel of the 256x256 frames."""
        return self.bytes * 8 / (self.frames * FRAME_SIZE * FRAME_SIZE)


@dataclass
class BDRate:
    """BD-rate (%) of ``test`` (fomc or fomc-base) against one baseline for one metric;
    negative: the test codec needs fewer bits for the same quality. ``value`` is None when it
    cannot be computed; ``problem`` then (or when the curves barely overlap) says why:
    ``points``, ``no-overlap`` or ``overlap``."""

    anchor: str
    metric: str
    rate: str  # "file" or "payload"
    value: float | None
    overlap: float
    points: tuple[int, int]  # Pareto points of anchor and test
    problem: str | None = None
    test: str = "fomc"

    @property
    def warning(self) -> str | None:
        name = f"{self.test} vs {self.anchor} ({self.metric}, {self.rate} bytes)"
        if self.problem == "points":
            return (
                f"{name}: no BD-rate, needs 2 Pareto points per curve, has "
                f"{self.points[0]} and {self.points[1]}"
            )
        if self.problem == "no-overlap":
            return f"{name}: no BD-rate, the curves do not overlap in quality"
        if self.problem == "overlap":
            return (
                f"{name}: the curves barely overlap ({self.overlap:.1%} of their quality "
                "range); the BD-rate describes only that part"
            )
        return None


def bd_warnings(bd_rates: Sequence[BDRate]) -> list[str]:
    """The BD-rate problems, one line per baseline, byte count and kind of problem."""
    text = {
        "points": "no BD-rate (fewer than 2 Pareto points on a curve)",
        "no-overlap": "no BD-rate (the curves do not overlap in quality)",
        "overlap": "curves barely overlap, BD-rate covers only the overlap",
    }
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for b in bd_rates:
        if b.problem:
            detail = f"{b.metric} ({b.overlap:.1%})" if b.problem == "overlap" else b.metric
            groups.setdefault((b.test, b.anchor, b.rate, b.problem), []).append(detail)
    return [
        f"{test} vs {anchor} ({rate} bytes): {text[problem]}: {', '.join(metrics)}"
        for (test, anchor, rate, problem), metrics in groups.items()
    ]


@dataclass
class CompareResult:
    clips: list[str]
    settings: CompareSettings
    rows: list[Measurement]
    means: list[Measurement]
    bd_rates: list[BDRate]
    warnings: list[str]
    model: dict[str, str]
    command: str | None = None

    @property
    def metrics(self) -> list[str]:
        return [m for m in METRICS if all(m in row.metrics for row in self.means)]


# --- running ------------------------------------------------------------------------------


def _measure(
    reference: np.ndarray, distorted: np.ndarray, fps: Fraction, settings: CompareSettings
) -> dict[str, float]:
    with QualityMeter(
        vmaf=settings.vmaf, fps=fps, vmaf_threads=settings.threads or 1, akd=settings.akd
    ) as meter:
        meter.update(reference, distorted)
        return meter.result()


def _fomc_run(
    frames: np.ndarray, fps: Fraction, point: FomcPoint | BasePoint, model: Any, device: str
) -> tuple[bytes, bs.StreamHeader, dict[str, int], np.ndarray, float, float]:
    """Encode and decode ``frames`` at ``point``: the stream's bytes, its header (as read
    back), its section sizes, the decoded frames and the encode and decode seconds."""
    from fomcodec.codec.pipeline import Decoder, Encoder

    started = time.perf_counter()
    if isinstance(point, BasePoint):
        encoder = Encoder(device=device, image_quality=point.quality, base_layer=point.settings)
    else:
        encoder = Encoder(
            model,
            device=device,
            image_quality=point.quality,
            quantization=point.quantization(),
            motion_coding=point.coding,
            motion_stride=point.motion_stride,
            refresh_db=point.refresh_db or None,
        )
    data = bs.pack(encoder.encode_frames(iter(frames), fps))
    encoded = time.perf_counter()
    decoder = Decoder(model, device=device)
    stream = bs.unpack(data)
    decoded = np.concatenate(list(decoder.decode_stream(stream)))
    finished = time.perf_counter()
    sizes = bs.section_sizes(data)
    return data, stream.header, sizes, decoded, encoded - started, finished - encoded


def measure_clip(
    clip: str | os.PathLike,
    settings: CompareSettings,
    model: Any,
    device: str = "auto",
    progress: Progress | None = None,
) -> list[Measurement]:
    """Every run of ``settings`` on one clip (see the module docstring)."""
    clip = Path(clip)
    fps = probe_video(clip).fps
    frames = np.stack(list(read_frames(clip, FRAME_SIZE, max_frames=settings.frames)))
    count = len(frames)
    duration = count / float(fps)
    rows: list[Measurement] = []

    def add(
        codec: str,
        config: str,
        params: dict[str, Any],
        size: float,
        payload: float,
        decoded: np.ndarray,
        encode_s: float,
        decode_s: float,
    ) -> None:
        rows.append(
            Measurement(
                clip.name,
                codec,
                config,
                params,
                count,
                duration,
                size,
                payload,
                _measure(frames, decoded, fps, settings),
                encode_s,
                decode_s,
            )
        )
        if progress:
            progress(f"{clip.name}: {codec} {config}")

    for point in settings.fomc_points:
        data, header, sizes, decoded, encode_s, decode_s = _fomc_run(
            frames, fps, point, model, device
        )
        payload = sizes["header"] + sizes["image"] + sizes["motion"]
        scales = header.quantization
        params = {
            "quality": point.quality,
            "motion_stride": point.motion_stride,
            "value_scale": scales.value_scale,
            "jacobian_scale": scales.jacobian_scale,
            "motion_coding": point.coding,
        }
        add("fomc", point.label, params, len(data), payload, decoded, encode_s, decode_s)
    for base in settings.base_points:
        data, _, sizes, decoded, encode_s, decode_s = _fomc_run(frames, fps, base, model, device)
        payload = sizes["header"] + sizes["image"] + sizes["base"]
        params = dataclasses.asdict(base)
        add("fomc-base", base.label, params, len(data), payload, decoded, encode_s, decode_s)
    if settings.still:
        for quality in sorted({p.quality for p in settings.fomc_points}):
            started = time.perf_counter()
            image = encode_image(frames[0], DEFAULT_CODEC, quality)
            encoded = time.perf_counter()
            still = np.repeat(decode_image(image)[None], count, axis=0)
            add(
                "still",
                f"{DEFAULT_CODEC} q{quality}",
                {"quality": quality},
                len(image.data),
                len(image.data),
                still,
                encoded - started,
                time.perf_counter() - encoded,
            )
    for codec in settings.codecs:
        for config in settings.baseline_configs(codec):
            run = encode_decode(frames, fps, config, settings.threads)
            params = {
                "crf": config.crf,
                "size": config.size,
                "fps_divisor": config.fps_divisor,
                "preset": config.effective_preset,
                "keyframes": run.keyframes,
            }
            add(
                codec,
                config.label,
                params,
                run.file_bytes,
                run.payload_bytes,
                run.frames,
                run.encode_seconds,
                run.decode_seconds,
            )
    return rows


def mean_rows(rows: Sequence[Measurement]) -> list[Measurement]:
    """One row per (codec, config) present for every clip: sizes, metrics and times
    averaged over the clips (rates are means of the per-clip rates)."""
    clips = list(dict.fromkeys(row.clip for row in rows))
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for row in rows:
        groups.setdefault((row.codec, row.config), []).append(row)
    means = []
    for (codec, config), group in groups.items():
        if len(group) != len(clips):
            continue
        duration = float(np.mean([r.duration for r in group]))
        frames = round(float(np.mean([r.frames for r in group])))
        names = [m for m in METRICS if all(m in r.metrics for r in group)]
        means.append(
            Measurement(
                MEAN_CLIP,
                codec,
                config,
                dict(group[0].params),
                frames,
                duration,
                float(np.mean([r.kbps for r in group])) * 1000 / 8 * duration,
                float(np.mean([r.payload_kbps for r in group])) * 1000 / 8 * duration,
                {m: float(np.mean([r.metrics[m] for r in group])) for m in names},
                float(np.mean([r.encode_seconds for r in group])),
                float(np.mean([r.decode_seconds for r in group])),
            )
        )
    return means


def pareto_front(rates: Sequence[float], values: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats (less or equal rate, higher quality),
    by increasing rate; along them rate and quality both strictly increase."""
    order = sorted(range(len(rates)), key=lambda i: (rates[i], -values[i]))
    front: list[int] = []
    best = -math.inf
    for index in order:
        if math.isfinite(values[index]) and values[index] > best:
            if front and rates[front[-1]] == rates[index]:
                continue
            front.append(index)
            best = values[index]
    return front


def curve(
    rows: Sequence[Measurement], codec: str, metric: str, rate: str = "file"
) -> tuple[np.ndarray, np.ndarray, list[Measurement]]:
    """The Pareto front of ``codec`` for ``metric``: (kbps, metric values, rows); for a metric
    where lower is better (AKD) the front is the lowest values."""
    chosen = [r for r in rows if r.codec == codec and metric in r.metrics]
    rates = [r.kbps if rate == "file" else r.payload_kbps for r in chosen]
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    values = [sign * r.metrics[metric] for r in chosen]
    front = pareto_front(rates, values)
    return (
        np.array([rates[i] for i in front]),
        np.array([sign * values[i] for i in front]),
        [chosen[i] for i in front],
    )


def curve_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Length of the common range of ``a`` and ``b`` over their joint range (0..1)."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    joint = max(a.max(), b.max()) - min(a.min(), b.min())
    common = min(a.max(), b.max()) - max(a.min(), b.min())
    if joint <= 0:
        return 1.0 if common == 0 else 0.0
    return max(common, 0.0) / joint


def bd_rate(
    rows: Sequence[Measurement],
    anchor: str,
    metric: str,
    rate: str = "file",
    test: str = "fomc",
    min_overlap: float = MIN_OVERLAP,
) -> BDRate:
    """BD-rate of ``test`` against ``anchor`` on their Pareto fronts (bjontegaard, Akima)."""
    import bjontegaard

    rate_a, value_a, _ = curve(rows, anchor, metric, rate)
    rate_t, value_t, _ = curve(rows, test, metric, rate)
    if metric in LOWER_IS_BETTER:  # bjontegaard needs quality that rises with the rate
        value_a, value_t = -value_a, -value_t
    points = (len(rate_a), len(rate_t))
    if min(points) < 2:
        return BDRate(anchor, metric, rate, None, 0.0, points, "points", test)
    overlap = curve_overlap(value_a, value_t)
    if overlap <= 0:
        return BDRate(anchor, metric, rate, None, 0.0, points, "no-overlap", test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(
            bjontegaard.bd_rate(
                rate_a,
                value_a,
                rate_t,
                value_t,
                method=BD_METHOD,
                require_matching_points=False,
                min_overlap=0,
            )
        )
    if not math.isfinite(value):
        return BDRate(anchor, metric, rate, None, overlap, points, "no-overlap", test)
    problem = "overlap" if overlap < min_overlap else None
    return BDRate(anchor, metric, rate, value, overlap, points, problem, test)


def all_bd_rates(
    rows: Sequence[Measurement], settings: CompareSettings, metrics: Iterable[str]
) -> list[BDRate]:
    """BD-rates of every test codec present (:data:`TEST_CODECS`) against every baseline."""
    metrics = list(metrics)
    present = {r.codec for r in rows}
    return [
        bd_rate(rows, anchor, metric, rate, test, settings.min_overlap)
        for test in TEST_CODECS
        if test in present
        for anchor in settings.codecs
        for rate in ("file", "payload")
        for metric in metrics
    ]


def run(
    clips: Sequence[str | os.PathLike],
    settings: CompareSettings | None = None,
    model: Any = None,
    device: str = "auto",
    progress: Progress | None = None,
    command: str | None = None,
) -> CompareResult:
    """Run the whole comparison on ``clips``; ``model`` is a name, path or loaded model
    (None: the default model)."""
    from fomcodec.runtime import resolve_device
    from fomcodec.zoo import DEFAULT_MODEL, MotionModel, load_model

    settings = settings or CompareSettings()
    if not clips:
        raise InputError("no clips to compare")
    names = [Path(c).name for c in clips]
    if len(set(names)) != len(names):
        raise InputError("two clips have the same file name; results are keyed by name")
    notes: list[str] = []
    missing = [c for c, ok in available_codecs().items() if c in settings.codecs and not ok]
    if missing:
        raise FomcError(f"PyAV's FFmpeg cannot encode {', '.join(missing)} here")
    if settings.vmaf and not vmaf_available():
        notes.append("VMAF left out: the imageio-ffmpeg ffmpeg with libvmaf was not found")
        settings = dataclasses.replace(settings, vmaf=False)
    if settings.akd and not landmarks_available():
        notes.append(
            "AKD left out: MediaPipe's Face Mesh is not installed "
            "(pip install 'fomcodec[landmarks]')"
        )
        settings = dataclasses.replace(settings, akd=False)
    if isinstance(model, MotionModel):
        motion_model = model.to(resolve_device(device)).eval()
    else:
        motion_model = load_model(
            DEFAULT_MODEL if model is None else model, device=resolve_device(device)
        )
    rows: list[Measurement] = []
    for clip in clips:
        rows.extend(measure_clip(clip, settings, motion_model, device, progress))
    means = mean_rows(rows)
    metrics = [m for m in METRICS if all(m in r.metrics for r in means)]
    bd = all_bd_rates(means, settings, metrics)
    notes.extend(bd_warnings(bd))
    weights_file = getattr(motion_model, "weights_path", None)
    model_info = {
        "name": motion_model.model_name,
        "weights": motion_model.weights_hash.hex(),
        "file": Path(weights_file).name if weights_file else "",
    }
    return CompareResult(names, settings, rows, means, bd, notes, model_info, command)


# --- reporting ----------------------------------------------------------------------------


def _row_dict(row: Measurement, metrics: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"clip": row.clip, "codec": row.codec, "config": row.config}
    for key in (
        "quality",
        "motion_stride",
        "value_scale",
        "jacobian_scale",
        "motion_coding",
        "crf",
        "size",
        "fps_divisor",
        "preset",
        "keyframes",
    ):
        out[key] = row.params.get(key, "")
    out.update(
        {
            "frames": row.frames,
            "duration_s": round(row.duration, 4),
            "bytes": round(row.bytes, 1),
            "payload_bytes": round(row.payload_bytes, 1),
            "kbps": round(row.kbps, 4),
            "payload_kbps": round(row.payload_kbps, 4),
            "bpp": round(row.bpp, 6),
        }
    )
    for metric in metrics:
        out[metric] = round(row.metrics[metric], 5) if metric in row.metrics else ""
    out.update({"encode_s": round(row.encode_seconds, 4), "decode_s": round(row.decode_seconds, 4)})
    return out


def _description(codec: str, result: CompareResult) -> str:
    model = result.model
    if codec == "fomc":
        return (
            f"fomc, model {model['name']} (weights {model['weights']}); bytes: the whole "
            ".fomc file, payload: header + source image + motion"
        )
    if codec == "fomc-base":
        fusers = sorted({p.fuser for p in result.settings.base_points})
        return (
            "fomc with an AV1 base layer instead of keypoints, fused with the source image's "
            f"detail (fuser {', '.join(fusers)}); bytes: the whole .fomc file, payload: "
            "header + source image + base layer"
        )
    if codec == "still":
        return (
            f"reference: fomc's source image alone ({DEFAULT_CODEC}), repeated; bytes: "
            "the image file"
        )
    encoder, preset, _ = ENCODERS[codec]
    preset = result.settings.presets.get(codec) or preset
    return (
        f"{codec} ({encoder} through PyAV, preset {preset}, one keyframe, ladder "
        f"{','.join(f'{s}/{d}' for s, d in result.settings.ladder)}); bytes: the MP4 file, "
        "payload: packets + parameter sets"
    )


def compressai_results(result: CompareResult, codec: str) -> dict[str, Any]:
    """One codec's mean points in CompressAI's parallel-array shape."""
    rows = [r for r in result.means if r.codec == codec]
    results: dict[str, list[float]] = {
        "kbps": [round(r.kbps, 4) for r in rows],
        "payload_kbps": [round(r.payload_kbps, 4) for r in rows],
        "bytes": [round(r.bytes, 1) for r in rows],
        "payload_bytes": [round(r.payload_bytes, 1) for r in rows],
        "bpp": [round(r.bpp, 6) for r in rows],
    }
    for metric in result.metrics:
        results[metric] = [round(r.metrics[metric], 5) for r in rows]
    results["encoding_time"] = [round(r.encode_seconds, 4) for r in rows]
    results["decoding_time"] = [round(r.decode_seconds, 4) for r in rows]
    return {
        "name": codec,
        "description": _description(codec, result),
        "results": results,
        "points": [r.config for r in rows],
        "params": [r.params for r in rows],
    }


def _codecs(result: CompareResult) -> list[str]:
    present = {r.codec for r in result.means}
    return [c for c in CODEC_ORDER if c in present]


def _environment() -> dict[str, str]:
    import av

    versions = {
        "python": platform.python_version(),
        "av": av.__version__,
        "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
    }
    for package in ("torch", "numpy", "pytorch_msssim", "bjontegaard", "imageio_ffmpeg"):
        try:
            module = __import__(package)
            versions[package] = str(getattr(module, "__version__", "?"))
        except ImportError:
            continue
    return versions


def results_document(result: CompareResult) -> dict[str, Any]:
    metrics = result.metrics
    return {
        "description": "fomc compare: rate-distortion of fomc, AV1 and H.264 on the same "
        "256x256 frames",
        "command": result.command,
        "clips": result.clips,
        "settings": result.settings.to_dict(),
        "model": result.model,
        "environment": _environment(),
        "codecs": {c: compressai_results(result, c) for c in _codecs(result)},
        "bd_rate": [
            {
                "test": b.test,
                "anchor": b.anchor,
                "metric": b.metric,
                "rate": b.rate,
                "bd_rate_percent": b.value,
                "overlap": round(b.overlap, 4),
                "pareto_points": list(b.points),
                "problem": b.problem,
                "warning": b.warning,
            }
            for b in result.bd_rates
        ],
        "rows": [_row_dict(r, metrics) for r in result.rows],
        "warnings": result.warnings,
    }


def _csv_text(result: CompareResult) -> str:
    metrics = result.metrics
    rows = [_row_dict(r, metrics) for r in [*result.rows, *result.means]]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _format(value: float | None, digits: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


_DIGITS = {"psnr-y": 2, "psnr-rgb": 2, "ssim-rgb": 4, "ms-ssim-rgb": 4, "vmaf": 2, "akd": 2}
_SHORT = {
    "psnr-y": "PSNR-Y",
    "psnr-rgb": "PSNR-RGB",
    "ssim-rgb": "SSIM",
    "ms-ssim-rgb": "MS-SSIM",
    "vmaf": "VMAF",
    "akd": "AKD",
}


def table_rows(result: CompareResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the mean points, ordered by codec then rate."""
    metrics = result.metrics
    header = [
        "codec",
        "point",
        "kbit/s",
        "payload",
        *(_SHORT[m] for m in metrics),
        "enc s",
        "dec s",
    ]
    rows = []
    for codec in _codecs(result):
        for r in sorted((r for r in result.means if r.codec == codec), key=lambda r: r.kbps):
            rows.append(
                [
                    codec,
                    r.config,
                    _format(r.kbps, 2),
                    _format(r.payload_kbps, 2),
                    *(_format(r.metrics.get(m), _DIGITS[m]) for m in metrics),
                    _format(r.encode_seconds, 2),
                    _format(r.decode_seconds, 2),
                ]
            )
    return header, rows


def bd_table_rows(result: CompareResult) -> tuple[list[str], list[list[str]]]:
    metrics = result.metrics
    header = ["test", "vs", "bytes", *(_SHORT[m] for m in metrics)]
    rows = []
    tests = [t for t in TEST_CODECS if any(b.test == t for b in result.bd_rates)]
    for test in tests:
        for anchor in result.settings.codecs:
            for rate in ("file", "payload"):
                rows.append(_bd_cells(result, test, anchor, rate, metrics))
    return header, rows


def _bd_cells(
    result: CompareResult, test: str, anchor: str, rate: str, metrics: Sequence[str]
) -> list[str]:
    cells = [test, anchor, rate]
    for metric in metrics:
        match = [
            b
            for b in result.bd_rates
            if (b.test, b.anchor, b.rate, b.metric) == (test, anchor, rate, metric)
        ]
        if not match or match[0].value is None:
            cells.append("-")
        else:
            flag = "*" if match[0].problem else ""
            cells.append(f"{match[0].value:+.1f} %{flag}")
    return cells


def format_table(result: CompareResult) -> str:
    """The terminal table: mean points, then BD-rates (``*``: curves barely overlap)."""

    def text_table(header: list[str], rows: list[list[str]]) -> str:
        widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
        lines = []
        for index, cells in enumerate([header, *rows]):
            lines.append(
                "  ".join(
                    c.ljust(w) if i < 2 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(cells, widths, strict=True))
                )
            )
            if index == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    title = (
        f"{len(result.clips)} clip(s), {result.rows[0].frames if result.rows else 0} "
        f"frames each at most, 256x256; means over clips"
    )
    parts = [title, text_table(*table_rows(result))]
    if result.bd_rates:
        parts += [
            "BD-rate of fomc (negative: fewer bits for the same quality; * curves barely overlap)",
            text_table(*bd_table_rows(result)),
        ]
    return "\n\n".join(parts)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    aligns = ["---" if i < 2 else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(aligns) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_markdown(result: CompareResult) -> str:
    lines = ["# fomc compare", ""]
    if result.command:
        lines += ["Command:", "", "```", result.command, "```", ""]
    lines += [
        f"Clips ({len(result.clips)}): " + ", ".join(f"`{c}`" for c in result.clips),
        "",
        f"Model: `{result.model['name']}` (weights `{result.model['weights']}`). "
        f"Frames: first {result.settings.frames or 'all'} of each clip, centre crop, "
        "256x256. Rates: kbit/s of the whole file (payload: without the container); "
        "metrics: means over frames, then over clips.",
        "",
        _markdown_table(*table_rows(result)),
        "",
    ]
    if result.bd_rates:
        lines += [
            "BD-rate of fomc against each baseline (Pareto fronts, Akima interpolation; "
            "negative: fomc needs fewer bits for the same quality; `*`: the curves "
            f"overlap in less than {result.settings.min_overlap:.0%} of their quality "
            "range):",
            "",
            _markdown_table(*bd_table_rows(result)),
            "",
        ]
    if result.warnings:
        lines += ["Warnings:", ""] + [f"- {w}" for w in result.warnings] + [""]
    lines += ["Plots: " + ", ".join(f"[{m}](rd-{m}.png)" for m in result.metrics), ""]
    return "\n".join(lines)


def plot_metric(result: CompareResult, metric: str, path: Path) -> Path:
    """Rate-distortion plot of one metric: every point faint, each codec's Pareto front as a
    line (solid: whole files; dotted: baselines' payload without the container)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    figure = Figure(figsize=(7, 4.8), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for codec in _codecs(result):
        colour, marker = CODEC_STYLE.get(codec, ("k", "."))
        rows = [r for r in result.means if r.codec == codec and metric in r.metrics]
        axes.scatter(
            [r.kbps for r in rows],
            [r.metrics[metric] for r in rows],
            color=colour,
            marker=marker,
            alpha=0.25,
            s=18,
            linewidths=0.8,
        )
        rates, values, _ = curve(result.means, codec, metric)
        style = "--" if codec == "still" else "-"
        axes.plot(
            rates,
            values,
            style,
            color=colour,
            marker=marker,
            markersize=5,
            label=codec if codec != "still" else "source image only",
        )
        if codec in ENCODERS:
            rates, values, _ = curve(result.means, codec, metric, rate="payload")
            axes.plot(rates, values, ":", color=colour, linewidth=1, label=f"{codec} payload only")
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("kbit/s (whole file)")
    axes.set_ylabel(METRIC_LABELS[metric])
    axes.set_title(f"{METRIC_LABELS[metric]}, {len(result.clips)} clip(s), 256x256")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return write_bytes_atomic(path, buffer.getvalue(), overwrite=True)


def output_names(result_metrics: Iterable[str], codecs: Iterable[str]) -> list[str]:
    return (
        [RESULTS_JSON, RESULTS_CSV, SUMMARY_MD]
        + [f"{c}.json" for c in codecs]
        + [f"rd-{m}.png" for m in result_metrics]
    )


def write_outputs(result: CompareResult, out_dir: str | os.PathLike) -> list[Path]:
    """Write results.json, results.csv, summary.md, one CompressAI-style JSON per codec and
    one RD plot per metric into ``out_dir`` (each file atomically); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def put(name: str, text: str) -> None:
        written.append(write_bytes_atomic(out / name, text.encode(), overwrite=True))

    document = results_document(result)
    put(RESULTS_JSON, json.dumps(document, indent=2) + "\n")
    put(RESULTS_CSV, _csv_text(result))
    put(SUMMARY_MD, summary_markdown(result))
    for codec, block in document["codecs"].items():
        put(f"{codec}.json", json.dumps(block, indent=2) + "\n")
    for metric in result.metrics:
        written.append(plot_metric(result, metric, out / f"rd-{metric}.png"))
    return written
