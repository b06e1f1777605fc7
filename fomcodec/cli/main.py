"""``fomc``: the command-line interface, a thin layer over :mod:`fomcodec.codec.pipeline`.

Exit codes: 0 success, 1 runtime or format error (one line on stderr), 2 usage error,
130 interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import click

from fomcodec.cli.commands import batch_command, compare_command
from fomcodec.cli.common import (
    config_option,
    device_option,
    fail_cleanly,
    image_codec_option,
    keep_heap_flat,
    load_model_option,
    model_option,
    overwrite_option,
    progress_bar,
    quiet_option,
    video_output,
    video_output_options,
)
from fomcodec.cli.face_commands import crop_command, prepare_command
from fomcodec.codec import bitstream as bs
from fomcodec.codec.base_layer import (
    BASE_FRAME_SIZE,
    DEFAULT_BASE_CRF,
    DEFAULT_BASE_SIZE,
    DEFAULT_FPS_DIVISOR,
    DEFAULT_FUSER,
    FPS_DIVISORS,
    BaseLayerSettings,
    rate_point,
)
from fomcodec.codec.keyframes import DEFAULT_REFRESH_DB
from fomcodec.codec.presets import DEFAULT_LATTICE_PRESET, DEFAULT_PRESET, PRESETS
from fomcodec.media.crop import CropBox, CropSchedule, parse_crop_box
from fomcodec.media.shots import DEFAULT_CUT_THRESHOLD


def _default_output(src: str, suffix: str) -> Path:
    return Path(Path(src).name).with_suffix(suffix)


crop_option = click.option(
    "--crop",
    "crop",
    default=None,
    metavar="centre|auto|X,Y,SIZE",
    help="Square crop: the centre square (default), auto (face detection), or a box in source "
    "pixels.",
)


def _is_auto(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "auto"


def _crop_box(
    value: str | None, src: str, device: str, cut_threshold: float = 0.0
) -> CropBox | CropSchedule | None:
    """The --crop option as a box: ``auto`` runs the face crop on ``src``, one box per shot
    when ``cut_threshold`` is set (shots split at cuts)."""
    if not _is_auto(value):
        return _parse_crop(value)
    from fomcodec.media.face_crop import find_crop_schedule, resolve_crop

    if cut_threshold:
        return find_crop_schedule(src, device=device, cut_threshold=cut_threshold)
    return resolve_crop("auto", src, device=device)


def _parse_crop(value: str | None) -> CropBox | None:
    if value is None or value in ("centre", "center"):
        return None
    try:
        return parse_crop_box(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--crop") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fomcodec", prog_name="fomc")
def main() -> None:
    """fomcodec: low-bitrate talking-head video coding with First Order Motion Model keypoints."""
    # The command owns its process, the library does not: SVT-AV1 (fomc compare's baseline)
    # prints its whole configuration at its default log level.
    os.environ.setdefault("SVT_LOG", "1")
    keep_heap_flat()


#: Options ``--kbps`` sets itself.
_RATE_CHOSEN = (
    "quality",
    "base_layer",
    "base_size",
    "base_crf",
    "base_fps_divisor",
    "base_adapt_db",
)


def _rate_choice(
    ctx: click.Context, kbps: float, fuser: str, quiet: bool
) -> tuple[int, BaseLayerSettings | None]:
    """(source image quality, base settings or None for keypoints) of the rate ladder's rung
    for ``kbps``; a usage error if an option it sets was given too."""
    given = [
        f"--{name.replace('_', '-')}"
        for name in _RATE_CHOSEN
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    ]
    if given:
        raise click.UsageError(f"--kbps picks {', '.join(given)} itself; leave them out")
    point = rate_point(kbps)
    if not quiet:
        click.echo(f"--kbps {kbps:g}: {point.label} (measured {point.kbps:.1f} kbit/s)", err=True)
    base = None if point.base is None else dataclasses.replace(point.base, fuser=fuser)
    return point.image_quality, base


@main.command()
@click.argument("src", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    help="Output .fomc file (default: the input's name with .fomc, here).",
)
@model_option
@config_option
@device_option
@overwrite_option
@click.option(
    "-q",
    "--quality",
    type=click.IntRange(0, 100),
    default=None,
    help="Source image quality, higher is better (default: the image codec's).",
)
@image_codec_option()
@crop_option
@click.option(
    "--motion-coding",
    type=click.Choice(bs.MOTION_CODINGS),
    default=bs.DEFAULT_MOTION_CODING,
    show_default=True,
    help="range: prediction + adaptive range coding; lzma2: the seed's layout.",
)
@click.option(
    "--value-scale",
    type=click.IntRange(1),
    default=None,
    help="Keypoint quantisation factor, the rate knob (default: the model's and coding's: "
    "250 for range, 10000 for lzma2; a lattice model's own with range, 80 for fomc-lattice).",
)
@click.option(
    "--jacobian-scale",
    type=click.IntRange(1),
    default=None,
    help="Jacobian quantisation factor (default: 10 for range, 1000 for lzma2).",
)
@click.option("--no-jacobians", is_flag=True, help="Send keypoint positions only.")
@click.option(
    "--smooth",
    "smoothing",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Gaussian smoothing of the motion over time (sigma in sent frames; "
    "fewer bits, less jitter; not with refining presets).",
)
@click.option(
    "--motion-stride",
    type=click.IntRange(1, 255),
    default=bs.DEFAULT_MOTION_STRIDE,
    show_default=True,
    help="Send keypoints for every N-th frame; the decoder fills in the rest.",
)
@click.option(
    "--absolute",
    is_flag=True,
    help="Send absolute keypoints instead of motion relative to the first frame.",
)
@click.option("--adapt-scale", is_flag=True, help="Convex-hull movement-scale adaptation.")
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default=None,
    help="Encode time against quality: 'medium' and 'slow' tune the sent motion "
    f"through the decoder (8 / 40 steps a frame). Default: {DEFAULT_LATTICE_PRESET} for a "
    f"lattice model (the default model), {DEFAULT_PRESET} for a FOMM model, where a step "
    "costs a generator pass.",
)
@click.option(
    "--refresh-db",
    type=click.FloatRange(0),
    default=DEFAULT_REFRESH_DB,
    show_default=True,
    help="Start a new source image (keyframe) where one would render the last second this "
    "many dB better than the source in use (tried once a second); 0: never.",
)
@click.option(
    "--max-keyframe-interval",
    type=click.FloatRange(0),
    default=0.0,
    metavar="SECONDS",
    help="Start a new source image at least this often (0, the default: no limit).",
)
@click.option(
    "--cut-threshold",
    type=click.FloatRange(0),
    default=DEFAULT_CUT_THRESHOLD,
    show_default=True,
    help="Content change (mean HSV difference, 0-255) that marks a shot cut and starts a "
    "keyframe; 0: no cut detection.",
)
@click.option(
    "--audio-bitrate",
    type=click.IntRange(500, 512_000),
    default=12_000,
    show_default=True,
    help="Opus bit rate of the sound (bit/s; speech is clear from about 8000).",
)
@click.option("--no-audio", is_flag=True, help="Leave the sound out.")
@click.option(
    "--base-layer",
    type=click.Choice(["none", "av1"]),
    default="none",
    show_default=True,
    help="av1: send the frames at low resolution (AV1) instead of keypoints; the decoder "
    "adds the source image's detail with --fuser (keypoint options do not apply).",
)
@click.option(
    "--base-size",
    type=click.IntRange(16, 256),
    default=DEFAULT_BASE_SIZE,
    show_default=True,
    help="Side of the base layer's frames in pixels (even).",
)
@click.option(
    "--base-crf",
    type=click.IntRange(1, 63),
    default=DEFAULT_BASE_CRF,
    show_default=True,
    help="SVT-AV1 CRF of the base layer, the rate knob (higher: fewer bits).",
)
@click.option(
    "--base-fps-divisor",
    type=click.Choice([str(k) for k in FPS_DIVISORS]),
    default=str(DEFAULT_FPS_DIVISOR),
    show_default=True,
    help="Code every N-th frame in the base layer; the decoder makes the ones between with "
    "the frame interpolator (N a power of two) or blends them.",
)
@click.option(
    "--base-adapt-db",
    type=click.FloatRange(0, 100, min_open=True, max_open=True),
    default=None,
    metavar="DB",
    help="Keep the base layer's quality near DB dB by its frame rate: every 32 frames, drop "
    "the most frames (up to --base-fps-divisor, a power of two) that leave the segment, "
    "trial-coded and interpolated as the decoder will make it, at DB dB PSNR or better (at "
    "the base size). Hard segments get more frames, still ones fewer.",
)
@click.option(
    "--fuser",
    default=DEFAULT_FUSER,
    show_default=True,
    metavar="NAME|PATH|detail",
    help="How the decoder adds the source image's detail to the base layer: a learned "
    "fuser (models/fusers/) or 'detail' (no network).",
)
@click.option(
    "--kbps",
    type=click.FloatRange(0, min_open=True),
    default=None,
    metavar="RATE",
    help="Video rate to aim at (kbit/s): picks a base layer, its size, CRF and frame rate, "
    "and the source image quality from rates measured on held-out clips "
    "(docs/base-layer.md); a clip may land above or below.",
)
@click.option(
    "--frames",
    "max_frames",
    type=click.IntRange(1),
    default=None,
    help="Encode at most this many frames.",
)
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@quiet_option
@fail_cleanly
@click.pass_context
def encode(
    ctx: click.Context,
    src: str,
    output: str | None,
    model: str | None,
    config: str | None,
    device: str,
    overwrite: bool,
    quality: int | None,
    image_codec: str | None,
    crop: str | None,
    motion_coding: str,
    value_scale: int | None,
    jacobian_scale: int | None,
    no_jacobians: bool,
    smoothing: float,
    motion_stride: int,
    absolute: bool,
    adapt_scale: bool,
    preset: str | None,
    refresh_db: float,
    max_keyframe_interval: float,
    cut_threshold: float,
    audio_bitrate: int,
    no_audio: bool,
    base_layer: str,
    base_size: int,
    base_crf: int,
    base_fps_divisor: str,
    base_adapt_db: float | None,
    fuser: str,
    kbps: float | None,
    max_frames: int | None,
    batch_size: int,
    quiet: bool,
) -> None:
    """Encode video SRC to a .fomc bitstream."""
    from fomcodec.codec import image_codec as images
    from fomcodec.codec.pipeline import Encoder
    from fomcodec.fileio import check_output_path
    from fomcodec.media.video_io import probe_video

    if not _is_auto(crop):
        _parse_crop(crop)  # a malformed box is a usage error, before any file is touched
    base = None
    if kbps is not None:
        quality, base = _rate_choice(ctx, kbps, fuser, quiet)
    elif base_layer == "av1":
        base = BaseLayerSettings(base_size, base_crf, int(base_fps_divisor), fuser, base_adapt_db)
        try:
            base.check(BASE_FRAME_SIZE)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    dst = Path(output) if output else _default_output(src, ".fomc")
    check_output_path(dst, overwrite)
    info = probe_video(src)
    box = _crop_box(crop, src, device, cut_threshold)
    codec = image_codec or images.DEFAULT_CODEC
    encoder = Encoder(
        None if base else load_model_option(model, config, device),
        device=device,
        batch_size=batch_size,
        image_codec=codec,
        image_quality=images.DEFAULT_QUALITY if quality is None else quality,
        quantization=(
            bs.quantization_for(motion_coding, value_scale, jacobian_scale)
            if value_scale or jacobian_scale
            else None
        ),
        relative=not absolute,
        adapt_scale=adapt_scale,
        motion_stride=motion_stride,
        preset=preset,
        motion_coding=motion_coding,
        jacobians=not no_jacobians,
        audio_bit_rate=None if no_audio else audio_bitrate,
        smoothing=smoothing,
        refresh_db=refresh_db or None,
        max_keyframe_interval=max_keyframe_interval or None,
        cut_threshold=cut_threshold or None,
        base_layer=base,
    )
    total = min(filter(None, [info.frame_count, max_frames]), default=None)
    with progress_bar(total, "frame", not quiet) as progress:
        stats = encoder.encode_file(
            src, dst, crop=box, overwrite=overwrite, max_frames=max_frames, progress=progress
        )
    if stats.clipped:
        click.echo(
            f"fomc: warning: {stats.clipped} motion values exceeded the int16 range and "
            "were clipped; lower --value-scale/--jacobian-scale",
            err=True,
        )
    if not quiet:
        click.echo(f"{stats.summary()} -> {dst}", err=True)


@main.command()
@click.argument("src", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    help="Output video file, .mp4/.mov/.mkv (default: the input's name with .mp4).",
)
@model_option
@config_option
@device_option
@overwrite_option
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option(
    "--bf16/--fp32",
    "bf16",
    default=None,
    help="Generator and fuser precision (default: bf16 where the hardware supports it).",
)
@click.option(
    "--interpolate/--no-interpolate",
    "fill",
    default=True,
    show_default=True,
    help="Fill the frames the encoder sent no motion for (--motion-stride), or "
    "output the sent frames only, at the lower frame rate.",
)
@click.option(
    "--inbetween",
    type=click.Choice(["interpolator", "keypoints"]),
    default=None,
    help="How in-between frames are made: the facial frame interpolator, or the "
    "generator driven by the average of the neighbouring keypoints (default: "
    "the one measured better, see docs/interpolation.md).",
)
@click.option(
    "--interpolator",
    default=None,
    metavar="NAME|PATH",
    help="Interpolator weights (default: ffi-flow).",
)
@click.option("--no-audio", is_flag=True, help="Write the video without the stream's sound.")
@video_output_options()
@quiet_option
@fail_cleanly
def decode(
    src: str,
    output: str | None,
    model: str | None,
    config: str | None,
    device: str,
    overwrite: bool,
    batch_size: int,
    bf16: bool | None,
    fill: bool,
    inbetween: str | None,
    interpolator: str | None,
    no_audio: bool,
    lossless: bool,
    crf: int | None,
    video_codec: str | None,
    pix_fmt: str | None,
    quiet: bool,
) -> None:
    """Decode a .fomc bitstream SRC to a video file."""
    from fomcodec.codec.pipeline import Decoder
    from fomcodec.fileio import check_output_path

    dst = Path(output) if output else _default_output(src, ".mp4")
    written_as = video_output(lossless, crf, video_codec, pix_fmt)
    check_output_path(dst, overwrite)
    stream = bs.load(src)  # read once; fail on a bad stream before loading any model
    header = stream.header
    decoder = Decoder(
        load_model_option(model, config, device),
        device=device,
        batch_size=batch_size,
        bf16=bf16,
        fill=fill,
        inbetween=inbetween,
        interpolator=interpolator,
        audio=not no_audio,
    )
    with progress_bar(decoder.output_frame_count(header), "frame", not quiet) as progress:
        stats = decoder.decode_file(
            stream, dst, overwrite=overwrite, progress=progress, output=written_as
        )
    if not quiet:
        click.echo(f"{stats.summary()} -> {dst}", err=True)


@main.command()
@click.argument("src", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Looping GIF (.gif) or video (.mp4/.mov/.mkv) of original | decoded "
    "(default: the input's name with .preview.gif, here).",
)
@model_option
@config_option
@device_option
@overwrite_option
@crop_option
@click.option(
    "--frames",
    "max_frames",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Frames to show.",
)
@click.option(
    "--strip",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Also write a PNG strip of a few frames (originals above, decoded below).",
)
@click.option("--strip-frames", type=click.IntRange(1, 32), default=6, show_default=True)
@click.option(
    "--motion-stride",
    type=click.IntRange(1, 255),
    default=bs.DEFAULT_MOTION_STRIDE,
    show_default=True,
    help="As for encode.",
)
@quiet_option
@fail_cleanly
def preview(
    src: str,
    output: str | None,
    model: str | None,
    config: str | None,
    device: str,
    overwrite: bool,
    crop: str | None,
    max_frames: int,
    strip: str | None,
    strip_frames: int,
    motion_stride: int,
    quiet: bool,
) -> None:
    """Encode and decode the start of video SRC and show original | decoded side by side."""
    from fomcodec.eval.preview import make_preview

    dst = Path(output) if output else Path(Path(src).stem + ".preview.gif")
    box = _crop_box(crop, src, device)
    with progress_bar(2 * max_frames, "frame", not quiet) as progress:
        stats = make_preview(
            src,
            dst,
            load_model_option(model, config, device),
            device,
            box,
            max_frames,
            strip,
            strip_frames,
            overwrite,
            motion_stride=motion_stride,
            progress=progress,
        )
    if not quiet:
        click.echo(f"{stats.summary()} -> {dst}" + (f", {strip}" if strip else ""), err=True)


@main.command()
@click.argument("src", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    required=True,
    help="Output video file (.mp4/.mov/.mkv) at twice the input's frame rate.",
)
@click.option(
    "--interpolator",
    default=None,
    metavar="NAME|PATH",
    help="Interpolator weights (default: ffi-flow).",
)
@device_option
@overwrite_option
@click.option(
    "--frames",
    "max_frames",
    type=click.IntRange(1),
    default=None,
    help="Read at most this many input frames.",
)
@click.option("--batch-size", type=click.IntRange(1), default=4, show_default=True)
@video_output_options()
@quiet_option
@fail_cleanly
def interpolate(
    src: str,
    output: str,
    interpolator: str | None,
    device: str,
    overwrite: bool,
    max_frames: int | None,
    batch_size: int,
    lossless: bool,
    crf: int | None,
    video_codec: str | None,
    pix_fmt: str | None,
    quiet: bool,
) -> None:
    """Double the frame rate of video SRC with the facial frame interpolator."""
    from fomcodec.codec.frame_interpolation import interpolate_file
    from fomcodec.fileio import check_output_path
    from fomcodec.media.video_io import probe_video

    written_as = video_output(lossless, crf, video_codec, pix_fmt)
    check_output_path(output, overwrite)
    info = probe_video(src)
    total = min(filter(None, [info.frame_count, max_frames]), default=None)
    with progress_bar(total, "frame", not quiet) as progress:
        read, written, seconds = interpolate_file(
            src,
            output,
            interpolator,
            device,
            batch_size,
            max_frames,
            overwrite,
            progress,
            written_as,
        )
    if not quiet:
        click.echo(
            f"interpolated {read} frames at {float(info.fps):g} fps -> {written} frames "
            f"at {float(info.fps * 2):g} fps in {seconds:.1f} s "
            f"({read / max(seconds, 1e-9):.1f} input frames/s) -> {output}",
            err=True,
        )


def loss_weight_option(flag: str, default: float, help: str):
    """A ``fomc train`` loss weight: a float >= 0 (0 switches the term off)."""
    return click.option(
        flag, type=click.FloatRange(0), default=default, show_default=True, help=help
    )


@main.command()
@click.option(
    "--config",
    "config_path",
    default="fomc-warp",
    show_default=True,
    metavar="NAME|YAML",
    help="Model config: a registered model's name or a YAML file.",
)
@click.option(
    "--data",
    "clips_dir",
    type=click.Path(exists=True, file_okay=False),
    required=True,
    help="Folder of raw clips (e.g. ../shared/data/clips).",
)
@click.option(
    "--split",
    "split_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="JSON naming the training and validation clips (default: the shipped split of "
    "../shared/data by person, splits/shared-data-v1.json).",
)
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where decoded training frames are kept, never committed (default: "
    "~/.cache/fomcodec/frames, or $XDG_CACHE_HOME/fomcodec/frames).",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Checkpoint and log folder; an existing run is resumed.",
)
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the best validated weights here (safetensors, fp16).",
)
@click.option("--steps", type=click.IntRange(1), default=100_000, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=4, show_default=True)
@click.option(
    "--lr",
    type=click.FloatRange(0, min_open=True),
    default=2e-4,
    show_default=True,
    help="Adam learning rate; a resumed run switches to it.",
)
@click.option(
    "--ema-decay",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Validate and export a moving average of the weights (e.g. 0.998); 0: off.",
)
@click.option(
    "--init",
    "init_weights",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Start from these weights (safetensors) when the run is new.",
)
@click.option("--time-budget", type=float, default=None, help="Stop after this many seconds.")
@click.option("--threads", type=click.IntRange(1), default=None, help="CPU threads for torch.")
@loss_weight_option(
    "--ms-ssim-weight", 5.0, "Weight of 1 - MS-SSIM (stands in for the VGG perceptual loss)."
)
@loss_weight_option(
    "--adversarial-weight", 0.0, "LSGAN loss from a multi-scale discriminator (FOMM vox-adv: 1)."
)
@loss_weight_option(
    "--feature-matching-weight", 0.0, "Discriminator feature matching (FOMM vox-adv: 10)."
)
@loss_weight_option(
    "--warp-weight", 0.0, "L1 between the source warped by the dense motion and the driving frame."
)
@loss_weight_option(
    "--flow-weight",
    0.0,
    "L1 between the dense motion and OpenCV DIS flow (the weightless teacher).",
)
@device_option
@fail_cleanly
def train(
    config_path: str,
    clips_dir: str,
    split_path: str | None,
    cache_dir: str | None,
    run_dir: str,
    export_path: str | None,
    steps: int,
    batch_size: int,
    lr: float,
    ema_decay: float,
    init_weights: str | None,
    time_budget: float | None,
    threads: int | None,
    ms_ssim_weight: float,
    adversarial_weight: float,
    feature_matching_weight: float,
    warp_weight: float,
    flow_weight: float,
    device: str,
) -> None:
    """Train (or resume training) a FOMM model on a folder of clips (CUDA when present)."""
    import torch

    from fomcodec.errors import ModelError
    from fomcodec.nets.config import ModelConfig
    from fomcodec.training.trainer import TrainConfig, train_from_folder
    from fomcodec.zoo import get_config, shipped_models_dir

    if threads:
        torch.set_num_threads(threads)
    if split_path is None:
        split_path = str(shipped_models_dir() / "splits" / "shared-data-v1.json")
    if cache_dir is None:
        cache_root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        cache_dir = str(Path(cache_root) / "fomcodec" / "frames")
    config = get_config(config_path)
    if not isinstance(config, ModelConfig):
        raise ModelError(f"'{config.name}' is a lattice warp: it has no weights to train")
    train_from_folder(
        config,
        TrainConfig(
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            ema_decay=ema_decay,
            validate_every=250,
            validation_frames=16,
            checkpoint_every=100,
            weight_ms_ssim=ms_ssim_weight,
            weight_adversarial=adversarial_weight,
            weight_feature_matching=feature_matching_weight,
            weight_warp=warp_weight,
            weight_flow=flow_weight,
            device=device,
        ),
        Path(clips_dir),
        Path(split_path),
        Path(cache_dir),
        Path(run_dir),
        Path(export_path) if export_path else None,
        time_budget_s=time_budget,
        init_weights=Path(init_weights) if init_weights else None,
    )


def _every_nth(stride: int) -> str:
    """``every frame``, ``every 2nd frame``, ``every 3rd frame``, ``every 11th frame``..."""
    if stride == 1:
        return "every frame"
    suffix = (
        "th" if 10 <= stride % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(stride % 10, "th")
    )
    return f"every {stride}{suffix} frame"


def stream_description(path: str) -> dict[str, Any]:
    """Everything ``fomc info`` shows about a stream, as a JSON-ready dict."""
    data, stream = bs.read(path)
    header = stream.header
    sizes = bs.section_sizes(data)
    duration = header.frame_count / float(header.fps)

    def kbps(size: int) -> float:
        return round(size * 8 / 1000 / duration, 3)

    return {
        "file": str(path),
        "format_version": stream.version,
        "motion_coding": stream.motion_coding,
        "bytes": len(data),
        "width": header.width,
        "height": header.height,
        "fps": str(header.fps),
        "frames": header.frame_count,
        "duration_s": round(duration, 3),
        "model": header.model_name,
        "weights_hash": header.weights_hash.hex(),
        "keypoints": header.num_kp,
        "jacobians": header.has_jacobians,
        "motion": "relative" if header.relative_motion else "absolute",
        "motion_stride": header.motion_stride,
        "motion_frames": header.motion_frames,
        "value_scale": header.quantization.value_scale,
        "jacobian_scale": header.quantization.jacobian_scale,
        "adapt_scale": round(header.adapt_scale, 6),
        "clipped_values": header.clipped,
        "source_images": [
            {
                "codec": img.codec,
                "bytes": len(img.data),
                "frame": start,
                "time_s": round(start / float(header.fps), 3),
                "frames": end - start,
                "adapt_scale": round(scale, 6),
            }
            for img, (start, end, scale) in zip(
                stream.source_images, stream.segments(), strict=True
            )
        ],
        "audio": None
        if stream.audio is None
        else {
            "codec": stream.audio.codec,
            "channels": stream.audio.channels,
            "sample_rate": stream.audio.sample_rate,
            "bit_rate": stream.audio.bit_rate,
            "duration_s": round(stream.audio.duration, 3),
            "packets": len(stream.audio.packets),
        },
        "base_layer": None
        if stream.base is None
        else {
            "codec": stream.base.codec,
            "fuser": stream.base.fuser,
            "width": stream.base.width,
            "height": stream.base.height,
            "fps_divisor": stream.base.fps_divisor,
            "segment_frames": stream.base.segment_frames or None,
            "segments_by_divisor": {
                str(k): stream.base.segment_divisors.count(k)
                for k in sorted(set(stream.base.segment_divisors))
            },
            "frames": stream.base.frame_count,
            "packets": len(stream.base.packets),
        },
        "sizes": sizes,
        "kbps": kbps(len(data)),
        "kbps_parts": {k: kbps(v) for k, v in sizes.items()},
    }


@main.command()
@click.argument("src", type=click.Path(dir_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@fail_cleanly
def info(src: str, as_json: bool) -> None:
    """Show the header and sizes of a .fomc bitstream."""
    desc = stream_description(src)
    if as_json:
        click.echo(json.dumps(desc, indent=2))
        return
    sizes, parts = desc["sizes"], desc["kbps_parts"]
    images = "; ".join(
        f"{i['codec']} {i['bytes']} B from frame {i['frame']} ({i['time_s']} s)"
        for i in desc["source_images"]
    )
    lines = [
        f"{desc['file']}: fomc v{desc['format_version']}, {desc['bytes']} B, {desc['kbps']} kbit/s",
        f"  video:   {desc['width']}x{desc['height']} @ {desc['fps']} fps, {desc['frames']} frames"
        f" ({desc['duration_s']} s)",
    ]
    base = desc["base_layer"]
    if base:
        fuser = (
            f"fuser '{desc['model']}' (weights {desc['weights_hash']})"
            if base["fuser"] == "learned"
            else "the 'detail' fuser"
        )
        rate = _every_nth(base["fps_divisor"])
        if base["segment_frames"]:
            counts = ", ".join(
                f"{_every_nth(int(k))} in {n}" for k, n in base["segments_by_divisor"].items()
            )
            rate = f"frame rate per segment of {base['segment_frames']} frames ({counts})"
        lines.append(
            f"  base:    {base['codec']} {base['width']}x{base['height']}, "
            f"{rate}, {base['frames']} frames, fused by {fuser}"
        )
    else:
        lines += [
            f"  model:   {desc['model']} (weights {desc['weights_hash']}), {desc['keypoints']} "
            f"keypoints{' + Jacobians' if desc['jacobians'] else ''}",
            f"  motion:  {desc['motion']}, {desc['motion_coding']}, "
            f"{_every_nth(desc['motion_stride'])}, {desc['motion_frames']} frames, "
            f"x{desc['value_scale']} / x{desc['jacobian_scale']}, "
            f"scale {desc['adapt_scale']}, {desc['clipped_values']} clipped",
        ]
    lines.append(f"  images:  {len(desc['source_images'])} keyframe(s): {images}")
    if desc["audio"]:
        audio = desc["audio"]
        lines.append(
            f"  audio:   {audio['codec']} {audio['channels']} ch @ {audio['sample_rate']} Hz, "
            f"{audio['bit_rate']} bit/s, {audio['duration_s']} s"
        )
    lines.append(
        f"  sizes:   image {sizes['image']} B ({parts['image']} kbit/s), "
        + (
            f"base {sizes['base']} B ({parts['base']} kbit/s), "
            if base
            else f"motion {sizes['motion']} B ({parts['motion']} kbit/s), "
        )
        + f"audio {sizes['audio']} B ({parts['audio']} kbit/s), "
        f"header {sizes['header']} B, container {sizes['container']} B"
    )
    click.echo("\n".join(lines))


main.add_command(compare_command)
main.add_command(batch_command)
main.add_command(crop_command)
main.add_command(prepare_command)


if __name__ == "__main__":
    main()
