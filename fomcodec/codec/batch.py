"""``fomc batch``: convert a folder of clips to ``.fomc`` streams, or a folder of streams back
to videos.

::

    IN_DIR --find_jobs (videos -> encode | .fomc -> decode)--> jobs (sorted, clashes refused)
      job --output exists and is valid? --yes--> skipped (resume)
          --no--> Encoder.encode_file / Decoder.decode_file (atomic: temp file + rename)
                  [--metrics: decode the new stream, QualityMeter against the source frames]
          --any error--> failed (one line), the batch goes on
      results --> fomc-batch.json / fomc-batch.csv in OUT_DIR, rewritten after every clip

Resuming: an interrupted run leaves only finished outputs (each is written to a temporary
file and renamed), so running the same command again skips what is done. An output counts as
done when it is valid: a ``.fomc`` that parses with every CRC correct, a video that opens
with the frame count its stream declares. Anything else at the output path is redone. ``-y``
redoes everything.

``jobs > 1`` runs clips in a process pool (``spawn``: no fork of a process holding torch
threads); each worker loads the model once and uses ``cpu_count // jobs`` torch threads
unless told otherwise. Progress (overall and per clip) comes back through a queue.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import multiprocessing
import os
import queue as queue_module
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fomcodec.errors import FomcError, InputError
from fomcodec.fileio import write_bytes_atomic
from fomcodec.media.crop import CropBox, CropSchedule, parse_crop_box

VIDEO_SUFFIXES = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".flv",
        ".wmv",
        ".y4m",
        ".3gp",
    }
)
STREAM_SUFFIX = ".fomc"
OUTPUT_SUFFIXES = (".mp4", ".mkv", ".mov")
SUMMARY_JSON, SUMMARY_CSV = "fomc-batch.json", "fomc-batch.csv"
MODES = ("encode", "decode")
CROP_WORDS = ("centre", "center", "auto")


@dataclass(frozen=True)
class BatchOptions:
    """How every clip of a batch is converted (plain values: it travels to worker processes).

    Encoding: ``encoder``, the :class:`~fomcodec.codec.pipeline.Encoder`'s keyword arguments
    as (name, value) pairs (those absent keep the Encoder's defaults), ``max_frames``, and
    the crop: ``crops`` maps a clip's
    name (relative to IN_DIR) to ``"x,y,size"``; clips not in it get ``crop``: None or
    ``centre`` (the centre square), ``auto`` (the face crop of :mod:`fomcodec.media.face_crop`,
    one per shot, detector ``face_detector``) or ``x,y,size``. ``metrics`` adds
    PSNR/SSIM/MS-SSIM (and ``vmaf``) of the decoded stream against the encoder's input frames.
    Decoding: ``suffix`` of the videos written, ``bf16``. ``model`` None: the default model
    (encode) or each stream's own (decode).
    """

    mode: str = "encode"
    model: str | None = None
    config: str | None = None
    device: str = "auto"
    overwrite: bool = False
    threads: int | None = None
    encoder: tuple[tuple[str, Any], ...] = ()  # Encoder keyword arguments; absent: defaults
    max_frames: int | None = None
    crop: str | None = None
    crops: tuple[tuple[str, str], ...] = ()
    face_detector: str = "auto"
    metrics: bool = False
    vmaf: bool = False
    suffix: str = ".mp4"
    bf16: bool | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.suffix not in OUTPUT_SUFFIXES:
            raise ValueError(f"video suffix must be one of {OUTPUT_SUFFIXES}, not {self.suffix!r}")
        if self.mode == "decode" and (self.metrics or self.vmaf):
            raise ValueError("quality metrics need the source clips: ask for them when encoding")
        for text in [*(box for _, box in self.crops)]:
            parse_crop_box(text)
        if self.crop is not None and self.crop.strip().lower() not in CROP_WORDS:
            parse_crop_box(self.crop)

    @property
    def output_suffix(self) -> str:
        return STREAM_SUFFIX if self.mode == "encode" else self.suffix


@dataclass(frozen=True)
class BatchJob:
    """One clip: ``name`` is its path relative to IN_DIR (POSIX form)."""

    name: str
    source: Path
    output: Path


@dataclass
class ClipResult:
    """What happened to one clip; one entry of the summary. ``bytes``/``kbps`` are the
    ``.fomc`` stream's (the encoder's output, the decoder's input); ``output_bytes`` what was
    written."""

    name: str
    source: str
    output: str
    status: str  # "done", "skipped" or "failed"
    crop: str | None = None
    frames: int | None = None
    duration_s: float | None = None
    bytes: int | None = None
    kbps: float | None = None
    output_bytes: int | None = None
    seconds: float | None = None
    error: str | None = None
    quality: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchSummary:
    mode: str
    input: str
    output: str
    results: list[ClipResult]
    seconds: float = 0.0
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failures(self) -> list[ClipResult]:
        return [r for r in self.results if r.status == "failed"]

    def line(self) -> str:
        """The closing line, e.g. ``batch encode: 5 clips, 3 done, 1 skipped, 1 failed``."""
        total_bytes = sum(r.bytes or 0 for r in self.results if r.status != "failed")
        return (
            f"batch {self.mode}: {len(self.results)} clips, {self.count('done')} done, "
            f"{self.count('skipped')} skipped, {self.count('failed')} failed; "
            f"{total_bytes} B of streams in {self.seconds:.1f} s"
        )


# --- finding the work ---------------------------------------------------------------------


def _candidates(in_dir: Path, recursive: bool, skip: Path | None) -> Iterator[Path]:
    """Files of ``in_dir`` (hidden ones left out), and not those inside folder ``skip``
    (the output folder, when it lies inside ``in_dir``)."""
    pattern = "**/*" if recursive else "*"
    skip = skip.resolve() if skip is not None and skip.resolve() != in_dir.resolve() else None
    for path in sorted(in_dir.glob(pattern)):
        relative = path.relative_to(in_dir)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if skip is not None and path.resolve().is_relative_to(skip):
            continue
        yield path


def detect_mode(in_dir: str | os.PathLike, recursive: bool = False) -> str:
    """``encode`` for a folder of videos, ``decode`` for a folder of ``.fomc`` streams."""
    folder = Path(in_dir)
    suffixes = {p.suffix.lower() for p in _candidates(folder, recursive, None)}
    streams, videos = STREAM_SUFFIX in suffixes, bool(suffixes & VIDEO_SUFFIXES)
    if streams and videos:
        raise InputError(
            f"{folder} holds both videos and .fomc streams; say which to convert "
            "(--encode or --decode)"
        )
    if not streams and not videos:
        raise InputError(f"{folder}: no video clips or .fomc streams found")
    return "decode" if streams else "encode"


def find_jobs(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    mode: str,
    suffix: str = ".mp4",
    recursive: bool = False,
) -> list[BatchJob]:
    """The clips of ``in_dir`` to convert, with their outputs in ``out_dir`` (same relative
    folders, new suffix). Two clips that would write the same output are refused."""
    source_dir, target_dir = Path(in_dir), Path(out_dir)
    if not source_dir.is_dir():
        raise InputError(f"{source_dir}: not a folder")
    if target_dir.exists() and not target_dir.is_dir():
        raise FomcError(f"{target_dir} exists and is not a folder")
    wanted = (lambda s: s in VIDEO_SUFFIXES) if mode == "encode" else (lambda s: s == STREAM_SUFFIX)
    out_suffix = STREAM_SUFFIX if mode == "encode" else suffix
    jobs: list[BatchJob] = []
    seen: dict[Path, str] = {}
    for path in _candidates(source_dir, recursive, target_dir):
        if not wanted(path.suffix.lower()):
            continue
        relative = path.relative_to(source_dir)
        output = target_dir / relative.with_suffix(out_suffix)
        if output in seen:
            raise InputError(
                f"{relative.as_posix()} and {seen[output]} would both be written to {output}"
            )
        seen[output] = relative.as_posix()
        jobs.append(BatchJob(relative.as_posix(), path, output))
    return jobs


# --- one clip -----------------------------------------------------------------------------

Report = Callable[[str, str, int], None]  # (event, clip name, frames): "start" / "advance"


class _Worker:
    """Per-process state: the encoder or decoder, built once per batch."""

    def __init__(self, options: BatchOptions) -> None:
        self.options = options
        self._encoder: Any = None
        self._decoders: dict[Any, Any] = {}
        self._detector: Any = None

    def _model(self) -> Any:
        from fomcodec.runtime import resolve_device
        from fomcodec.zoo import DEFAULT_MODEL, load_model

        o = self.options
        if o.model is None and o.config is None:
            return None
        return load_model(
            o.model or DEFAULT_MODEL, config=o.config, device=resolve_device(o.device)
        )

    def encoder(self) -> Any:
        if self._encoder is None:
            from fomcodec.codec.pipeline import Encoder

            o = self.options
            self._encoder = Encoder(self._model(), device=o.device, **dict(o.encoder))
        return self._encoder

    def decoder(self, header: Any = None) -> Any:
        """The decoder for a stream with ``header``: one per model when the streams' own
        models are used, else the one given (or the encoder's)."""
        from fomcodec.codec.pipeline import Decoder

        o = self.options
        given = o.model is not None or o.config is not None or self._encoder is not None
        key = None if given or header is None else (header.model_name, header.weights_hash)
        if key not in self._decoders:
            model = self._encoder.model if self._encoder is not None else self._model()
            self._decoders[key] = Decoder(model, device=o.device, bf16=o.bf16)
        return self._decoders[key]

    def crop_for(self, job: BatchJob) -> CropBox | CropSchedule | None:
        o = self.options
        named = dict(o.crops)
        if job.name in named:
            return parse_crop_box(named[job.name])
        text = (o.crop or "centre").strip().lower()
        if text in ("centre", "center"):
            return None
        if text != "auto":
            return parse_crop_box(o.crop or "")
        try:
            from fomcodec.media import face_crop
            from fomcodec.media.face_detection import load_face_detector
        except ImportError as exc:
            raise FomcError(f"the automatic face crop is not available: {exc}") from None
        if self._detector is None:
            self._detector = load_face_detector(o.face_detector, device="cpu")
        return face_crop.find_crop_schedule(job.source, self._detector)

    def run(self, job: BatchJob, report: Report | None) -> ClipResult:
        started = time.perf_counter()
        try:
            valid = existing_output(job, self.options)
            if valid is not None and not self.options.overwrite:
                return valid
            overwrite = self.options.overwrite or job.output.exists()
            job.output.parent.mkdir(parents=True, exist_ok=True)
            if self.options.mode == "encode":
                result = self._encode(job, overwrite, report)
            else:
                result = self._decode(job, overwrite, report)
        except Exception as exc:  # noqa: BLE001 - one clip's failure must not stop the batch
            if os.environ.get("FOMC_DEBUG"):
                import traceback

                traceback.print_exc()
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return ClipResult(
                job.name,
                str(job.source),
                str(job.output),
                "failed",
                seconds=round(time.perf_counter() - started, 3),
                error=message,
            )
        result.seconds = round(time.perf_counter() - started, 3)
        return result

    def _encode(self, job: BatchJob, overwrite: bool, report: Report | None) -> ClipResult:
        from fomcodec.media.video_io import probe_video

        encoder = self.encoder()
        box = self.crop_for(job)
        info = probe_video(job.source)
        frames = min(filter(None, [info.frame_count, self.options.max_frames]), default=0)
        passes = 2 if self.options.metrics else 1
        if report:
            report("start", job.name, frames * passes)
        progress = (lambda n: report("advance", job.name, n)) if report else None
        stats = encoder.encode_file(
            job.source,
            job.output,
            crop=box,
            overwrite=overwrite,
            max_frames=self.options.max_frames,
            progress=progress,
        )
        result = ClipResult(
            job.name,
            str(job.source),
            str(job.output),
            "done",
            crop=str(box) if box else "centre",
            frames=stats.frames,
            duration_s=round(stats.duration, 4),
            bytes=stats.total_bytes,
            kbps=round(stats.kbps(), 4),
            output_bytes=stats.total_bytes,
        )
        if self.options.metrics:
            result.quality = self._quality(job, box, progress)
        return result

    def _quality(
        self,
        job: BatchJob,
        box: CropBox | CropSchedule | None,
        progress: Callable[[int], None] | None,
    ) -> dict[str, float]:
        from fomcodec.codec import bitstream as bs
        from fomcodec.eval.metrics import QualityMeter
        from fomcodec.media.video_io import iter_batches, read_frames

        _, stream = bs.read(job.output)
        decoder = self.decoder(stream.header)
        size = stream.header.width
        source = iter_batches(
            read_frames(job.source, size, box, self.options.max_frames), decoder.batch_size
        )
        with QualityMeter(vmaf=self.options.vmaf, fps=stream.header.fps) as meter:
            for decoded, reference in zip(
                decoder.decode_stream(stream, progress), source, strict=True
            ):
                meter.update(reference, decoded)
            return {name: round(value, 5) for name, value in meter.result().items()}

    def _decode(self, job: BatchJob, overwrite: bool, report: Report | None) -> ClipResult:
        from fomcodec.codec import bitstream as bs

        header = bs.load(job.source).header
        if report:
            report("start", job.name, header.frame_count)
        progress = (lambda n: report("advance", job.name, n)) if report else None
        stats = self.decoder(header).decode_file(
            job.source, job.output, overwrite=overwrite, progress=progress
        )
        return ClipResult(
            job.name,
            str(job.source),
            str(job.output),
            "done",
            frames=stats.frames,
            duration_s=round(stats.duration, 4),
            bytes=stats.total_bytes,
            kbps=round(stats.kbps(), 4),
            output_bytes=job.output.stat().st_size,
        )


def existing_output(job: BatchJob, options: BatchOptions) -> ClipResult | None:
    """A "skipped" result when ``job``'s output exists and is valid, else None."""
    from fomcodec.codec import bitstream as bs
    from fomcodec.media.video_io import probe_video

    if not job.output.is_file():
        return None
    try:
        if options.mode == "encode":
            data, stream = bs.read(job.output)
        else:
            data, stream = bs.read(job.source)
            info = probe_video(job.output)
            if info.frame_count is not None and info.frame_count != stream.header.frame_count:
                return None
    except FomcError:
        return None
    header = stream.header
    duration = header.frame_count / float(header.fps)
    return ClipResult(
        job.name,
        str(job.source),
        str(job.output),
        "skipped",
        frames=header.frame_count,
        duration_s=round(duration, 4),
        bytes=len(data),
        kbps=round(len(data) * 8 / 1000 / duration, 4),
        output_bytes=job.output.stat().st_size,
    )


# --- worker processes ---------------------------------------------------------------------

_WORKER: _Worker | None = None
_QUEUE: Any = None


def _init_worker(options: BatchOptions, events: Any, threads: int) -> None:
    global _WORKER, _QUEUE
    import torch

    signal.signal(signal.SIGTERM, _interrupt)
    torch.set_num_threads(threads)
    _WORKER, _QUEUE = _Worker(options), events


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _queue_report(event: str, name: str, frames: int) -> None:
    with contextlib.suppress(Exception):
        _QUEUE.put_nowait((event, name, frames))


def _run_in_worker(job: BatchJob) -> ClipResult:
    assert _WORKER is not None
    try:
        return _WORKER.run(job, _queue_report)
    except KeyboardInterrupt:
        # Ctrl-C or the parent's terminate(): the with-blocks on the way here removed any
        # temporary output; end the process instead of taking the next clip.
        os._exit(130)


# --- progress -----------------------------------------------------------------------------


class BatchProgress:
    """Progress on stderr with tqdm: one bar for the batch (clips), one per running clip
    (frames). Hidden when stderr is not a terminal or ``enabled`` is False; failures are
    printed as they happen either way."""

    def __init__(
        self, total: int, slots: int = 1, enabled: bool = True, unit: str = "clip"
    ) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.enabled = enabled
        self.overall = tqdm(
            total=total,
            unit=unit,
            desc="batch",
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
            position=0,
            disable=None if enabled else True,
        )
        self._free = list(range(1, slots + 1))
        self._bars: dict[str, tuple[Any, int]] = {}
        self._finished: set[str] = set()

    def start(self, name: str, frames: int) -> None:
        if name in self._finished:  # a late event from a worker
            return
        position = self._free.pop(0) if self._free else len(self._bars) + 1
        bar = self._tqdm(
            total=frames or None,
            unit="frame",
            desc=name[-40:],
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
            position=position,
            disable=None if self.enabled else True,
        )
        self._bars[name] = (bar, position)

    def advance(self, name: str, frames: int) -> None:
        if name in self._bars:
            self._bars[name][0].update(frames)

    def finish(self, result: ClipResult) -> None:
        self._finished.add(result.name)
        if result.name in self._bars:
            bar, position = self._bars.pop(result.name)
            self._free = sorted([*self._free, position])
            bar.close()
        if result.status == "failed":
            self._tqdm.write(f"fomc: {result.name}: failed: {result.error}", file=sys.stderr)
        self.overall.update(1)

    def close(self) -> None:
        for bar, _ in self._bars.values():
            bar.close()
        self._bars.clear()
        self.overall.close()

    def event(self, event: str, name: str, frames: int) -> None:
        if event == "start":
            self.start(name, frames)
        elif event == "advance":
            self.advance(name, frames)


# --- the batch ----------------------------------------------------------------------------


def _previous_entries(out_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        document = json.loads((out_dir / SUMMARY_JSON).read_text())
        return {
            entry["name"]: entry
            for entry in document.get("clips", [])
            if entry.get("status") in ("done", "skipped")
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def _carry_over(result: ClipResult, previous: dict[str, dict[str, Any]]) -> ClipResult:
    """A skipped clip keeps the time and quality its earlier run measured."""
    old = previous.get(result.name)
    if result.status == "skipped" and old and old.get("output") == result.output:
        result.seconds = old.get("seconds")
        result.quality = dict(old.get("quality") or {})
    return result


def write_summary(
    summary: BatchSummary, out_dir: str | os.PathLike, options: BatchOptions
) -> tuple[Path, Path]:
    """Write ``fomc-batch.json`` and ``fomc-batch.csv`` into ``out_dir`` atomically."""
    out = Path(out_dir)
    totals = {
        "clips": len(summary.results),
        "done": summary.count("done"),
        "skipped": summary.count("skipped"),
        "failed": summary.count("failed"),
        "frames": sum(r.frames or 0 for r in summary.results),
        "bytes": sum(r.bytes or 0 for r in summary.results if r.status != "failed"),
        "seconds": round(summary.seconds, 3),
    }
    document = {
        "mode": summary.mode,
        "input": summary.input,
        "output": summary.output,
        "interrupted": summary.interrupted,
        "options": asdict(options),
        "totals": totals,
        "clips": [r.to_dict() for r in summary.results],
        "failures": [{"name": r.name, "error": r.error} for r in summary.failures],
    }
    json_path = write_bytes_atomic(
        out / SUMMARY_JSON, (json.dumps(document, indent=2) + "\n").encode(), overwrite=True
    )
    metrics = list(dict.fromkeys(k for r in summary.results for k in r.quality))
    columns = [f.name for f in fields(ClipResult) if f.name != "quality"] + metrics
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for result in summary.results:
        row = {k: v for k, v in result.to_dict().items() if k != "quality"}
        row.update(result.quality)
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    csv_path = write_bytes_atomic(out / SUMMARY_CSV, buffer.getvalue().encode(), overwrite=True)
    return json_path, csv_path


def run_batch(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: BatchOptions,
    jobs: int = 1,
    recursive: bool = False,
    progress: BatchProgress | None = None,
    on_result: Callable[[ClipResult], None] | None = None,
) -> BatchSummary:
    """Convert every clip of ``in_dir`` into ``out_dir`` (see the module docstring).

    ``on_result`` is called after each clip, once the summary files include it. Ctrl-C
    stops the batch (finished outputs and the summary stay) and re-raises.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be positive, not {jobs}")
    source_dir, target_dir = Path(in_dir), Path(out_dir)
    work = find_jobs(source_dir, target_dir, options.mode, options.suffix, recursive)
    if not work:
        kind = "video clips" if options.mode == "encode" else ".fomc streams"
        raise InputError(f"{source_dir}: no {kind} to {options.mode}")
    target_dir.mkdir(parents=True, exist_ok=True)
    previous = _previous_entries(target_dir)
    summary = BatchSummary(options.mode, str(source_dir), str(target_dir), [])
    order = {job.name: index for index, job in enumerate(work)}
    started = time.perf_counter()

    def record(result: ClipResult) -> None:
        summary.results.append(_carry_over(result, previous))
        summary.results.sort(key=lambda r: order[r.name])
        summary.seconds = time.perf_counter() - started
        write_summary(summary, target_dir, options)
        if progress:
            progress.finish(result)
        if on_result:
            on_result(result)

    try:
        if jobs == 1 or len(work) == 1:
            _run_here(work, options, progress, record)
        else:
            _run_pool(work, options, jobs, progress, record)
    except KeyboardInterrupt:
        summary.interrupted = True
        summary.seconds = time.perf_counter() - started
        write_summary(summary, target_dir, options)
        raise
    summary.seconds = time.perf_counter() - started
    write_summary(summary, target_dir, options)
    return summary


def _run_here(
    work: Sequence[BatchJob],
    options: BatchOptions,
    progress: BatchProgress | None,
    record: Callable[[ClipResult], None],
) -> None:
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    worker = _Worker(options)
    report = progress.event if progress else None
    for job in work:
        record(worker.run(job, report))


def _run_pool(
    work: Sequence[BatchJob],
    options: BatchOptions,
    jobs: int,
    progress: BatchProgress | None,
    record: Callable[[ClipResult], None],
) -> None:
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    threads = options.threads or max(1, (os.cpu_count() or 1) // jobs)

    def drain() -> None:
        while True:
            try:
                event, name, frames = events.get_nowait()
            except queue_module.Empty:
                return
            if progress:
                progress.event(event, name, frames)

    executor = ProcessPoolExecutor(
        max_workers=min(jobs, len(work)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(options, events, threads),
    )
    futures: dict[Future[ClipResult], BatchJob] = {}
    try:
        futures = {executor.submit(_run_in_worker, job): job for job in work}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            drain()
            for future in sorted(done, key=lambda f: futures[f].name):
                job = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - a crashed worker fails its clip
                    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    result = ClipResult(
                        job.name,
                        str(job.source),
                        str(job.output),
                        "failed",
                        error=f"worker failed: {message}",
                    )
                record(result)
    except BaseException:
        _stop(executor)
        raise
    executor.shutdown(wait=True)
    events.close()


def _stop(executor: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers; SIGTERM makes a worker raise
    KeyboardInterrupt, so a clip being written leaves no temporary file behind."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=10)
