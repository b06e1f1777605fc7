"""Exceptions raised by fomcodec.

Every error a user can cause (bad input file, damaged bitstream, wrong model) is a
:class:`FomcError`; the CLI prints its message on one line and exits with status 1.
"""

from __future__ import annotations


class FomcError(Exception):
    """Base class for every error fomcodec reports to a user."""


class InputError(FomcError):
    """An input file is missing, unreadable, not a video, or holds no frames."""


class BitstreamError(FomcError):
    """A ``.fomc`` stream is truncated, corrupted, or otherwise malformed."""


class UnsupportedVersionError(BitstreamError):
    """A ``.fomc`` stream uses a format version this build cannot read."""


class ModelError(FomcError):
    """A model cannot be found, built or loaded."""


class ModelMismatchError(ModelError):
    """A stream was made with other model weights than the decoder holds."""
