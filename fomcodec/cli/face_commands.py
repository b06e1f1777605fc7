"""``fomc crop`` and ``fomc prepare``: the face crop and dataset preparation commands.

Registered on the ``fomc`` group in :mod:`fomcodec.cli.main` (``main.add_command``). Errors follow
the CLI's conventions (:func:`fomcodec.cli.common.fail_cleanly`: one line, exit 1; usage errors
exit 2; Ctrl-C exits 130).
"""

from __future__ import annotations

from pathlib import Path

import click

from fomcodec.cli.common import fail_cleanly, video_output, video_output_options
from fomcodec.media.face_detection import DETECTOR_CHOICES

#: x264 quality of face crops: a little above the encoders' default of 18, as they are sources
CROP_CRF = 15

detector_option = click.option(
    "--detector",
    type=click.Choice(DETECTOR_CHOICES),
    default="auto",
    show_default=True,
    help="Face detector: face-alignment (S3FD, downloads its weights on first use), haar "
    "(OpenCV's cascade, offline), or auto (face-alignment, else haar). "
    "$FOMC_FACE_DETECTOR sets the auto choice.",
)
device_option = click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="Device for face-alignment: cpu, cuda or cuda:N.",
)


@click.command("crop")
@click.argument("src", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    help="Output video (default: the input's name with .crop.mp4, here).",
)
@click.option("-y", "--overwrite", is_flag=True, help="Overwrite the output file if it exists.")
@detector_option
@device_option
@click.option(
    "--box-only",
    is_flag=True,
    help="Only print the crop box (X,Y,SIZE, for --crop); write no video.",
)
@click.option(
    "--crop",
    "crop",
    default=None,
    metavar="X,Y,SIZE",
    help="Use this square (source pixels) instead of looking for the face.",
)
@click.option(
    "--size",
    type=click.IntRange(16, 4096),
    default=256,
    show_default=True,
    help="Output frame size.",
)
@click.option(
    "--margin",
    type=click.FloatRange(0.5, 3.0),
    default=1.0,
    show_default=True,
    help="Scale the VoxCeleb-like framing around the face.",
)
@video_output_options(default_crf=CROP_CRF)
@click.option(
    "--frames",
    "max_frames",
    type=click.IntRange(1),
    default=None,
    help="Write at most this many frames.",
)
@click.option("--quiet", is_flag=True, help="No summary line.")
@fail_cleanly
def crop_command(
    src: str,
    output: str | None,
    overwrite: bool,
    detector: str,
    device: str,
    box_only: bool,
    crop: str | None,
    size: int,
    margin: float,
    lossless: bool,
    crf: int | None,
    video_codec: str | None,
    pix_fmt: str | None,
    max_frames: int | None,
    quiet: bool,
) -> None:
    """Find the face in video SRC and write a stable square crop of it (256x256).

    Prints the chosen box (X,Y,SIZE in source pixels) on stdout, for `fomc encode --crop`.
    """
    from fomcodec.fileio import check_output_path
    from fomcodec.media.crop import parse_crop_box
    from fomcodec.media.face_crop import find_crop
    from fomcodec.media.face_detection import load_face_detector
    from fomcodec.media.video_io import probe_video, read_frames

    written_as = video_output(
        lossless, crf if crf is not None or lossless else CROP_CRF, video_codec, pix_fmt
    )
    given = None
    if crop is not None:
        try:
            given = parse_crop_box(crop)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--crop") from None
    dst = None
    if not box_only:
        dst = Path(output) if output else Path(Path(src).stem + ".crop.mp4")
        check_output_path(dst, overwrite)
    info = probe_video(src)
    if given is None:
        notify = None if quiet else (lambda message: click.echo(message, err=True))
        found = load_face_detector(detector, device=device, notify=notify)
        choice = find_crop(src, found, margin=margin)
        box = choice.box
        if not quiet:
            click.echo(f"fomc: {choice.summary()}", err=True)
            if choice.doubtful:
                click.echo(
                    "fomc: warning: the face moves a lot or is often not found "
                    "(several shots?); check the crop, or pass --crop X,Y,SIZE",
                    err=True,
                )
    else:
        box = given
    click.echo(str(box))
    if dst is None:
        return
    with written_as.writer(dst, info.fps, overwrite=overwrite) as writer:
        for frame in read_frames(src, size, box, max_frames):
            writer.write(frame)
    if not quiet:
        click.echo(f"fomc: {writer.frames_written} frames, {size}x{size} -> {dst}", err=True)


@click.command("prepare")
@click.argument("in_dir", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=str),
    required=True,
    help="Output folder (clips/, manifest.json, split.json); an existing one is resumed.",
)
@click.option(
    "--people",
    "people_file",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="JSON mapping clip file names to person ids (default: "
    "IN_DIR/people.json, or the project's grouping file naming "
    "every clip, e.g. models/splits/shared-data-people.json).",
)
@click.option(
    "--split-file",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help='Use this split ({"train": [...], "validation": [...]} of clip names) '
    "instead of choosing one; clips it does not name are left out.",
)
@click.option(
    "--validation-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.15,
    show_default=True,
    help="Share of clips held out for validation (whole people).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Which people are held out.")
@detector_option
@device_option
@click.option("--size", type=click.IntRange(16, 4096), default=256, show_default=True)
@click.option(
    "--crf",
    type=click.IntRange(1, 51),
    default=15,
    show_default=True,
    help="x264 quality of the crops (lower is better).",
)
@click.option(
    "--frames",
    "max_frames",
    type=click.IntRange(1),
    default=None,
    help="At most this many frames per clip.",
)
@click.option("--quiet", is_flag=True, help="Only errors and warnings.")
@fail_cleanly
def prepare_command(
    in_dir: str,
    out_dir: str,
    people_file: str | None,
    split_file: str | None,
    validation_fraction: float,
    seed: int,
    detector: str,
    device: str,
    size: int,
    crf: int,
    max_frames: int | None,
    quiet: bool,
) -> None:
    """Turn a folder of raw clips IN_DIR into a training set of face crops, split by person."""
    from fomcodec.training.prepare import prepare_dataset

    def notify(message: str) -> None:
        if not quiet or "skipped" in message or "warning" in message:
            click.echo(message, err=True)

    result = prepare_dataset(
        in_dir,
        out_dir,
        people=people_file,
        split=split_file,
        validation_fraction=validation_fraction,
        seed=seed,
        detector_preference=detector,
        device=device,
        size=size,
        crf=crf,
        max_frames=max_frames,
        notify=notify,
    )
    if not quiet:
        click.echo(f"fomc: prepare: {result.summary()}", err=True)
    if result.failed:
        click.echo(
            f"fomc: warning: {len(result.failed)} clips failed (no face found?); see "
            f"{result.manifest_path}",
            err=True,
        )
