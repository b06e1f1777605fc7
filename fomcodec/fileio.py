"""Safe file output: nothing half-written is ever left at the destination."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fomcodec.errors import FomcError


class OutputExistsError(FomcError):
    """The output file exists and overwriting was not allowed."""


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Return ``path`` as a Path, refusing an existing file unless ``overwrite``."""
    out = Path(path)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists (use -y to overwrite)")
    if out.is_dir():
        raise FomcError(f"{out} is a directory")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FomcError(f"output folder {parent} does not exist")
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only on success.

    On any exception (Ctrl-C included) the temporary file is removed and ``path`` is left
    as it was, so a failed run never leaves a partial output behind.
    """
    out = check_output_path(path, overwrite)
    folder = out.parent if str(out.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=f".part{out.suffix}", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path, overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)
