"""Pieces shared by every ``fomc`` subcommand: clean failures, progress bars, common options."""

from __future__ import annotations

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
    bar = tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False,
               disable=None if enabled else True)
    try:
        yield bar.update
    finally:
        bar.close()


model_option = click.option("--model", "model", default=None, metavar="NAME|PATH",
                            help="Registered model name, .safetensors/.yaml path, or an official "
                                 "FOMM checkpoint (.pth.tar). Default: fomc-small (encode), the "
                                 "stream's model (decode).")
config_option = click.option("--config", "config", default=None, metavar="NAME|YAML",
                             help="Architecture for a checkpoint path (default vox-256).")
device_option = click.option("--device", default="auto", show_default=True,
                             help="auto, cpu, cuda or cuda:N.")
overwrite_option = click.option("-y", "--overwrite", is_flag=True,
                                help="Overwrite the output file if it exists.")
quiet_option = click.option("--quiet", is_flag=True, help="No progress bar or summary.")
#: fomcodec.image_codec.CODECS, spelled out so that the CLI starts without Pillow and numpy
IMAGE_CODECS = ("av1", "avif", "webp", "jpeg", "png")


def image_codec_option(help_suffix: str = "") -> Callable[[Any], Any]:
    """``--image-codec``: how the source image is coded (default: the codec's own, av1)."""
    return click.option("--image-codec", type=click.Choice(IMAGE_CODECS), default=None,
                        help=f"How the source image is coded (default: av1, which is AVIF "
                             f"without its 260-byte container){help_suffix}.")


def load_model_option(model: str | None, config: str | None, device: str):
    """The model named by --model/--config, or None to let the codec choose."""
    from fomcodec.runtime import resolve_device
    from fomcodec.zoo import DEFAULT_MODEL, load_model

    if model is None and config is None:
        return None
    return load_model(model or DEFAULT_MODEL, config=config, device=resolve_device(device))
