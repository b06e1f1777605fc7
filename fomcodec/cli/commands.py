"""``fomc compare`` and ``fomc batch``: click commands, a thin layer over
:mod:`fomcodec.eval.compare` and :mod:`fomcodec.codec.batch`; registered on ``fomc`` by
:mod:`fomcodec.cli.main` (``main.add_command``).

Shared options and the clean-failure wrapper come from :mod:`fomcodec.cli.common`.

Same habits as the other commands: progress and warnings on stderr, data (the comparison
table, ``--json``) on stdout, one-line errors with exit status 1, 2 for usage errors, 130 when
interrupted. ``fomc batch`` exits 1 when any clip failed, after listing the failures.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click
from tqdm import tqdm

from fomcodec.cli.common import (
    config_option,
    device_option,
    fail_cleanly,
    image_codec_option,
    load_model_option,
    model_option,
    quiet_option,
)
from fomcodec.codec import bitstream as bs
from fomcodec.media.face_detection import DETECTOR_CHOICES


def _int_list(value: str | None, option: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        numbers = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated integers, not {value!r}", param_hint=option
        ) from None
    if not numbers:
        raise click.BadParameter("give at least one value", param_hint=option)
    return numbers


def _command_line() -> str:
    return "fomc " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "fomc compare"


@click.command("compare")
@click.argument(
    "clips", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=str)
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=str),
    default="fomc-compare",
    show_default=True,
    help="Folder for results.json, results.csv, summary.md, <codec>.json and the "
    "rd-<metric>.png plots.",
)
@click.option("-y", "--overwrite", is_flag=True, help="Replace earlier results in --out.")
@model_option
@config_option
@device_option
@click.option(
    "--frames",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Frames of each clip (from the start).",
)
@click.option("--all-frames", is_flag=True, help="Use whole clips (overrides --frames).")
@click.option(
    "--fomc-point",
    "fomc_points",
    multiple=True,
    metavar="q=N,stride=N,vs=N,js=N,coding=range|lzma2",
    help="A fomc rate point (repeatable): source image quality, keypoint stride, "
    "value/Jacobian quantisation scales. Default: six points from q10 "
    "stride 4 to q60.",
)
@click.option(
    "--base-point",
    "base_points",
    multiple=True,
    metavar="q=N,size=N,crf=N,fps=N,fuser=NAME,adapt=DB",
    help="A rate point of the AV1 base layer mode (repeatable): source image quality, base "
    "layer size, SVT-AV1 CRF, frame-rate divisor, fuser (a learned fuser's name or 'detail'), "
    "adaptive frame rate (fomc encode --base-adapt-db). "
    "Default: the rungs of 'fomc encode --kbps', 96px crf60 /4 to 128px crf42.",
)
@click.option("--no-base-layer", is_flag=True, help="Leave the base layer mode out.")
@click.option(
    "--codec",
    "codecs",
    multiple=True,
    type=click.Choice(["av1", "h264"]),
    help="Baselines to run (repeatable; default both).",
)
@click.option("--no-baselines", is_flag=True, help="Run fomc (and the still image) only.")
@click.option(
    "--av1-crf", default=None, metavar="LIST", help="SVT-AV1 CRFs, e.g. 63,55,47,39 (the default)."
)
@click.option(
    "--h264-crf", default=None, metavar="LIST", help="x264 CRFs, e.g. 51,45,39,33 (the default)."
)
@click.option(
    "--ladder",
    default=None,
    metavar="SIZE/DIV,...",
    help="Coded size and frame-rate divisor of the baselines, every CRF at each: "
    "default 256/1,128/2,64/4.",
)
@click.option("--av1-preset", default=None, help="SVT-AV1 preset (default 4).")
@click.option("--h264-preset", default=None, help="x264 preset (default veryslow).")
@click.option(
    "--vmaf/--no-vmaf",
    default=True,
    show_default=True,
    help="Measure VMAF (ffmpeg from imageio-ffmpeg with libvmaf).",
)
@click.option(
    "--akd/--no-akd",
    default=True,
    show_default=True,
    help="Measure the average keypoint distance of facial landmarks (MediaPipe "
    "Face Mesh, the 'landmarks' extra).",
)
@click.option("--no-still", is_flag=True, help="Leave out the 'source image only' reference line.")
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=None,
    help="CPU threads for torch, the baseline encoders and VMAF.",
)
@click.option(
    "--min-overlap",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Warn when the curves overlap in less than this share of their quality range.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print results.json on stdout instead of the table."
)
@quiet_option
@fail_cleanly
def compare_command(
    clips: tuple[str, ...],
    out_dir: str,
    overwrite: bool,
    model: str | None,
    config: str | None,
    device: str,
    frames: int,
    all_frames: bool,
    fomc_points: tuple[str, ...],
    base_points: tuple[str, ...],
    no_base_layer: bool,
    codecs: tuple[str, ...],
    no_baselines: bool,
    av1_crf: str | None,
    h264_crf: str | None,
    ladder: str | None,
    av1_preset: str | None,
    h264_preset: str | None,
    vmaf: bool,
    akd: bool,
    no_still: bool,
    threads: int | None,
    min_overlap: float,
    as_json: bool,
    quiet: bool,
) -> None:
    """Compare fomc with AV1 and H.264 on CLIPS: rate-distortion table, CSV, JSON, plots
    and BD-rates, on the same 256x256 centre-cropped frames."""
    from fomcodec.errors import FomcError
    from fomcodec.eval import compare
    from fomcodec.fileio import OutputExistsError

    try:
        points = (
            tuple(compare.FomcPoint.parse(p) for p in fomc_points) or compare.DEFAULT_FOMC_POINTS
        )
        bases = tuple(compare.BasePoint.parse(p) for p in base_points)
        if no_base_layer:
            bases = ()
        elif not bases:
            bases = compare.DEFAULT_BASE_POINTS
        rungs = compare.parse_ladder(ladder) if ladder else compare.DEFAULT_LADDER
        crfs = dict(compare.DEFAULT_CRFS)
        for codec, text, option in (
            ("av1", av1_crf, "--av1-crf"),
            ("h264", h264_crf, "--h264-crf"),
        ):
            values = _int_list(text, option)
            if values:
                crfs[codec] = values
        settings = compare.CompareSettings(
            frames=None if all_frames else frames,
            fomc_points=points,
            base_points=bases,
            codecs=() if no_baselines else (codecs or ("av1", "h264")),
            crfs=crfs,
            ladder=rungs,
            presets={"av1": av1_preset, "h264": h264_preset},
            vmaf=vmaf,
            akd=akd,
            still=not no_still,
            threads=threads,
            min_overlap=min_overlap,
        )
        for codec in settings.codecs:
            settings.baseline_configs(codec)  # CRF ranges checked before any work
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FomcError(f"{out} exists and is not a folder")
    if (out / compare.RESULTS_JSON).exists() and not overwrite:
        raise OutputExistsError(
            f"{out / compare.RESULTS_JSON} already exists (use -y to overwrite)"
        )
    if threads:
        import torch

        torch.set_num_threads(threads)
    motion_model = load_model_option(model, config, device)
    total = settings.runs_per_clip() * len(clips)
    with tqdm(
        total=total,
        unit="run",
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
        disable=True if quiet else None,
    ) as bar:

        def progress(message: str) -> None:
            bar.set_postfix_str(message[-60:], refresh=False)
            bar.update(1)

        result = compare.run(
            clips,
            settings,
            model=motion_model,
            device=device,
            progress=progress,
            command=_command_line(),
        )
    written = compare.write_outputs(result, out)
    if as_json:
        click.echo(json.dumps(compare.results_document(result), indent=2))
    else:
        click.echo(compare.format_table(result))
    for warning in result.warnings:
        click.echo(f"fomc: warning: {warning}", err=True)
    if not quiet:
        click.echo(
            f"compared {len(clips)} clip(s), {len(result.rows)} runs -> {out}/ "
            f"({len(written)} files)",
            err=True,
        )


@click.command("batch")
@click.argument("in_dir", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Output folder (created if missing); the same relative paths, new suffix.",
)
@click.option(
    "--encode",
    "mode",
    flag_value="encode",
    help="Encode the videos of IN_DIR (default when it holds videos).",
)
@click.option(
    "--decode",
    "mode",
    flag_value="decode",
    help="Decode the .fomc streams of IN_DIR (default when it holds streams).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Clips converted at once (worker processes).",
)
@click.option("-r", "--recursive", is_flag=True, help="Also convert clips in subfolders.")
@click.option(
    "-y",
    "--overwrite",
    is_flag=True,
    help="Redo every clip (default: skip clips whose output exists and is valid).",
)
@model_option
@config_option
@device_option
@click.option(
    "-q",
    "--quality",
    type=click.IntRange(0, 100),
    default=None,
    help="Source image quality, higher is better (encode).",
)
@image_codec_option(" (encode)")
@click.option(
    "--value-scale",
    type=click.IntRange(1),
    default=None,
    help="Keypoint quantisation factor (default: the model's and motion coding's).",
)
@click.option(
    "--jacobian-scale",
    type=click.IntRange(1),
    default=None,
    help="Jacobian quantisation factor (default: the motion coding's).",
)
@click.option(
    "--motion-stride",
    type=click.IntRange(1, 255),
    default=bs.DEFAULT_MOTION_STRIDE,
    show_default=True,
)
@click.option(
    "--frames",
    "max_frames",
    type=click.IntRange(1),
    default=None,
    help="Encode at most this many frames of each clip.",
)
@click.option(
    "--crop",
    default=None,
    metavar="centre|auto|X,Y,SIZE",
    help="Crop of every clip: the centre square (default), auto (face crop) or a "
    "box in source pixels.",
)
@click.option(
    "--crops",
    "crops_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="JSON object mapping clip names (relative to IN_DIR) to "
    "'X,Y,SIZE' boxes; overrides --crop for those clips.",
)
@click.option(
    "--face-detector",
    type=click.Choice(list(DETECTOR_CHOICES)),
    default="auto",
    show_default=True,
    help="Detector for --crop auto.",
)
@click.option(
    "--metrics",
    is_flag=True,
    help="Also decode each new stream and measure PSNR/SSIM/MS-SSIM against the "
    "source frames (encode).",
)
@click.option("--vmaf", is_flag=True, help="With --metrics: VMAF too.")
@click.option(
    "--format",
    "video_format",
    type=click.Choice(["mp4", "mkv", "mov"]),
    default="mp4",
    show_default=True,
    help="Video files written (decode).",
)
@click.option("--bf16/--fp32", "bf16", default=None, help="Generator precision (decode).")
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=None,
    help="torch threads per worker (default: CPU cores / jobs).",
)
@quiet_option
@fail_cleanly
def batch_command(
    in_dir: str,
    out_dir: str,
    mode: str | None,
    jobs: int,
    recursive: bool,
    overwrite: bool,
    model: str | None,
    config: str | None,
    device: str,
    quality: int | None,
    image_codec: str | None,
    value_scale: int | None,
    jacobian_scale: int | None,
    motion_stride: int,
    max_frames: int | None,
    crop: str | None,
    crops_file: str | None,
    face_detector: str,
    metrics: bool,
    vmaf: bool,
    video_format: str,
    bf16: bool | None,
    threads: int | None,
    quiet: bool,
) -> None:
    """Convert every clip of IN_DIR into OUT_DIR: videos to .fomc streams, or .fomc streams
    to videos. Finished outputs are skipped, so an interrupted run resumes; a clip that fails
    is reported and the rest go on. Writes fomc-batch.json and fomc-batch.csv."""
    from fomcodec.codec import batch

    crops: tuple[tuple[str, str], ...] = ()
    if crops_file:
        try:
            table = json.loads(Path(crops_file).read_text())
            crops = tuple((str(k), str(v)) for k, v in table.items())
        except (OSError, ValueError, AttributeError) as exc:
            raise click.BadParameter(
                f"{crops_file}: not a JSON object of boxes ({exc})", param_hint="--crops"
            ) from None
    mode = mode or batch.detect_mode(in_dir, recursive)
    encoder: dict[str, object] = {"motion_stride": motion_stride}
    if quality is not None:
        encoder["image_quality"] = quality
    if image_codec is not None:
        encoder["image_codec"] = image_codec
    if value_scale or jacobian_scale:
        encoder["quantization"] = bs.quantization_for(
            bs.DEFAULT_MOTION_CODING, value_scale, jacobian_scale
        )
    try:
        options = batch.BatchOptions(
            mode=mode,
            model=model,
            config=config,
            device=device,
            overwrite=overwrite,
            threads=threads,
            encoder=tuple(encoder.items()),
            max_frames=max_frames,
            crop=crop,
            crops=crops,
            face_detector=face_detector,
            metrics=metrics or vmaf,
            vmaf=vmaf,
            suffix=f".{video_format}",
            bf16=bf16,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    work = batch.find_jobs(in_dir, out_dir, mode, options.suffix, recursive)
    progress = batch.BatchProgress(len(work), slots=jobs, enabled=not quiet)
    try:
        summary = batch.run_batch(
            in_dir, out_dir, options, jobs=jobs, recursive=recursive, progress=progress
        )
    finally:
        progress.close()
    if not quiet:
        click.echo(f"{summary.line()} -> {Path(out_dir) / batch.SUMMARY_JSON}", err=True)
    if summary.failures:
        click.echo(f"fomc: {len(summary.failures)} clip(s) failed:", err=True)
        for failed in summary.failures:
            click.echo(f"  {failed.name}: {failed.error}", err=True)
        sys.exit(1)
