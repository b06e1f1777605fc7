"""Pieces shared by every ``fomc`` subcommand: clean failures, progress bars, common options."""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from tqdm import tqdm

from fomcodec.errors import FomcError


def fail_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a FomcError into one line and exit 1, Ctrl-C into exit 130; no tracebacks
    unless FOMC_DEBUG is set."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FomcError as exc:
            if os.environ.get("FOMC_DEBUG"):
                raise
            click.echo(f"fomc: error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("fomc: interrupted", err=True)
            sys.exit(130)
        except (ValueError, OSError, RuntimeError) as exc:
            if os.environ.get("FOMC_DEBUG"):
                raise
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            click.echo(f"fomc: error: {message}", err=True)
            sys.exit(1)

    return wrapper


@contextmanager
def progress_bar(total: int | None, unit: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A tqdm bar on stderr (hidden when stderr is not a terminal or ``enabled`` is False)."""
    bar = tqdm(
        total=total,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
        disable=None if enabled else True,
    )
    try:
        yield bar.update
    finally:
        bar.close()


model_option = click.option(
    "--model",
    "model",
    default=None,
    metavar="NAME|PATH",
    help="Registered model name, .safetensors/.yaml path, or an official "
    "FOMM checkpoint (.pth.tar). Default: the shipped default model "
    "(encode), the stream's model (decode).",
)
config_option = click.option(
    "--config",
    "config",
    default=None,
    metavar="NAME|YAML",
    help="Architecture for a checkpoint path (default vox-256).",
)
device_option = click.option(
    "--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."
)
overwrite_option = click.option(
    "-y", "--overwrite", is_flag=True, help="Overwrite the output file if it exists."
)
quiet_option = click.option("--quiet", is_flag=True, help="No progress bar or summary.")
#: fomcodec.codec.image_codec.CODECS, spelled out so that the CLI starts without Pillow and numpy
IMAGE_CODECS = ("av1", "avif", "webp", "jpeg", "png")


def image_codec_option(help_suffix: str = "") -> Callable[[Any], Any]:
    """``--image-codec``: how the source image is coded (default: the codec's own, av1)."""
    return click.option(
        "--image-codec",
        type=click.Choice(IMAGE_CODECS),
        default=None,
        help=f"How the source image is coded (default: av1, which is AVIF "
        f"without its 260-byte container){help_suffix}.",
    )


def load_model_option(model: str | None, config: str | None, device: str):
    """The model named by --model/--config, or None to let the codec choose."""
    from fomcodec.runtime import resolve_device
    from fomcodec.zoo import DEFAULT_MODEL, load_model

    if model is None and config is None:
        return None
    return load_model(model or DEFAULT_MODEL, config=config, device=resolve_device(device))


#: fomcodec.media.video_io's encoders and pixel formats, spelled out so the CLI starts without PyAV
VIDEO_CODECS = ("libx264", "libx264rgb", "ffv1", "mpeg4", "libopenh264")
PIXEL_FORMATS = ("yuv420p", "yuv422p", "yuv444p", "rgb24", "bgr24", "bgr0")


def video_output_options(default_crf: int | None = None) -> Callable[[Any], Any]:
    """``--lossless``, ``--crf``, ``--codec`` and ``--pix-fmt`` of commands that write video
    (the container still follows the output's extension). ``--crf`` is None unless given;
    ``default_crf`` is what the command then uses, for the help text."""
    crf_help = (
        "x264 quality: 0 lossless .. 51 worst "
        f"(default {default_crf if default_crf is not None else 18})."
    )
    options = [
        click.option(
            "--lossless",
            is_flag=True,
            help="Exact RGB (libx264rgb, else FFV1): what the decoder made, unchanged. "
            "Plays in ffmpeg/ffplay, mpv and VLC; browsers and most phones "
            "show only yuv420p H.264.",
        ),
        click.option("--crf", type=click.IntRange(0, 51), default=None, help=crf_help),
        click.option(
            "--codec",
            "video_codec",
            type=click.Choice(VIDEO_CODECS),
            default=None,
            help="Video encoder (default: libx264; with --lossless libx264rgb).",
        ),
        click.option(
            "--pix-fmt",
            type=click.Choice(PIXEL_FORMATS),
            default=None,
            help="Pixel format (default: the encoder's, yuv420p for libx264).",
        ),
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def video_output(lossless: bool, crf: int | None, video_codec: str | None, pix_fmt: str | None):
    """The :class:`~fomcodec.media.video_io.VideoOutput` of those options (a usage error if they
    contradict each other)."""
    from fomcodec.media.video_io import VideoOutput

    try:
        return VideoOutput(video_codec, crf, lossless, pix_fmt)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


#: glibc's ``mallopt`` parameter number of the mmap threshold.
_M_MMAP_THRESHOLD = -3
#: Blocks at least this large are mapped on their own and unmapped when freed.
MMAP_THRESHOLD = 4 << 20


def keep_heap_flat() -> bool:
    """Fix glibc's mmap threshold (process-wide; the CLI calls it at start-up, an embedding
    application may too). glibc raises the threshold each time a large block is freed, after
    which blocks of a frame batch's size come from the heap and the heap only grows: a
    10-minute encode ended 290 MB larger than a 20-second one. Returns False where this is not
    glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False
