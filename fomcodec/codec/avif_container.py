"""The AVIF container around one AV1 still image, taken off and put back.

An AVIF file from libavif (through Pillow) is about 275 bytes of HEIF boxes around the AV1
data: ``ftyp``, ``meta`` (``hdlr``, ``pitm``, ``iloc``, ``iinf``, ``iprp``) and ``mdat``.
For a one-image file nearly all of it is fixed. :func:`strip` keeps only what varies (15
bytes: the image size, the ``av1C`` record and the ``nclx`` colour box) ahead of the AV1
OBUs; :func:`rebuild` writes the file back. :func:`strip` succeeds only when
:func:`rebuild` gives back the very same bytes, so the round trip is lossless by
construction::

    AVIF file --strip--> size + av1C + nclx + OBUs --rebuild--> the same AVIF file
"""

from __future__ import annotations

import struct

from fomcodec.errors import BitstreamError

#: Bytes ahead of the OBUs in a stripped image: width, height (u16), av1C (4), nclx (7).
HEADER_BYTES = 15
_HEADER = struct.Struct(">HH4s7s")
_ITEM_NAME = b"Color\0"


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full_box(kind: bytes, body: bytes, version: int = 0) -> bytes:
    return _box(kind, struct.pack(">I", version << 24) + body)


def _container(width: int, height: int, av1c: bytes, nclx: bytes, payload_size: int) -> bytes:
    """Every byte of the file ahead of the AV1 data (which follows it, to the end)."""
    brand = b"MA1A" if av1c[1] >> 5 == 1 else b"MA1B"  # profile 1 (4:4:4) or 0 (4:2:0)
    ftyp = _box(b"ftyp", b"avif" + bytes(4) + b"avif" + b"mif1" + b"miaf" + brand)
    hdlr = _full_box(b"hdlr", bytes(4) + b"pict" + bytes(13))
    pitm = _full_box(b"pitm", struct.pack(">H", 1))
    infe = _full_box(b"infe", struct.pack(">HH", 1, 0) + b"av01" + _ITEM_NAME, version=2)
    iinf = _full_box(b"iinf", struct.pack(">H", 1) + infe)
    ipco = _box(
        b"ipco",
        _full_box(b"ispe", struct.pack(">II", width, height))
        + _full_box(b"pixi", bytes([3, 8, 8, 8]))
        + _box(b"av1C", av1c)
        + _box(b"colr", b"nclx" + nclx),
    )
    ipma = _full_box(b"ipma", struct.pack(">IHB", 1, 1, 4) + bytes([1, 2, 0x83, 4]))
    iprp = _box(b"iprp", ipco + ipma)

    def iloc(data_offset: int) -> bytes:  # one item, one extent; 4-byte offset and length
        return _full_box(
            b"iloc", struct.pack(">BBHHHHII", 0x44, 0, 1, 1, 0, 1, data_offset, payload_size)
        )

    def meta(data_offset: int) -> bytes:
        return _full_box(b"meta", hdlr + pitm + iloc(data_offset) + iinf + iprp)

    return (
        ftyp + meta(len(ftyp) + len(meta(0)) + 8) + struct.pack(">I4s", 8 + payload_size, b"mdat")
    )


def _boxes(data: bytes, start: int, end: int, skip: int = 0) -> dict[bytes, tuple[int, int]]:
    """Child boxes of ``data[start:end]`` (after ``skip`` header bytes): type -> body span."""
    found, offset = {}, start + skip
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        if size < 8 or offset + size > end:
            break
        found[kind] = (offset + 8, offset + size)
        offset += size
    return found


def strip(avif: bytes) -> bytes | None:
    """The 15-byte header and the AV1 data of a one-image AVIF file, or None when the file
    is not laid out as :func:`rebuild` writes it (another libavif, an alpha channel...)."""
    top = _boxes(avif, 0, len(avif))
    if b"meta" not in top or b"mdat" not in top:
        return None
    meta = _boxes(avif, *top[b"meta"], skip=4)
    ipco = _boxes(avif, *_boxes(avif, *meta.get(b"iprp", (0, 0))).get(b"ipco", (0, 0)))
    if not {b"ispe", b"av1C", b"colr"} <= set(ipco):
        return None
    width, height = struct.unpack_from(">II", avif, ipco[b"ispe"][0] + 4)
    av1c = avif[slice(*ipco[b"av1C"])]
    colr = avif[slice(*ipco[b"colr"])]
    if (
        width > 0xFFFF
        or height > 0xFFFF
        or len(av1c) != 4
        or len(colr) != 11
        or colr[:4] != b"nclx"
    ):
        return None
    payload = avif[slice(*top[b"mdat"])]
    stripped = _HEADER.pack(width, height, av1c, colr[4:]) + payload
    return stripped if rebuild(stripped) == avif else None


def rebuild(stripped: bytes) -> bytes:
    """The AVIF file that :func:`strip` took ``stripped`` from.

    Raises:
        BitstreamError: too short to hold the header, or an empty image.
    """
    if len(stripped) <= HEADER_BYTES:
        raise BitstreamError(f"AV1 source image of {len(stripped)} bytes is truncated")
    width, height, av1c, nclx = _HEADER.unpack_from(stripped)
    if width == 0 or height == 0:
        raise BitstreamError(f"AV1 source image declares {width}x{height} pixels")
    payload = stripped[HEADER_BYTES:]
    return _container(width, height, av1c, nclx, len(payload)) + payload
