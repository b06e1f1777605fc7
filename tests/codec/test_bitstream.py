from __future__ import annotations

import contextlib
import dataclasses
import lzma
import struct
import time
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fomcodec.codec import bitstream
from fomcodec.codec.bitstream import (
    Bitstream,
    EncodedImage,
    Keyframe,
    StreamHeader,
    load,
    motion_frame_count,
    pack,
    save,
    section_sizes,
    unpack,
)
from fomcodec.codec.quantization import QuantizationParams, QuantizedMotion, quantize_motion
from fomcodec.errors import BitstreamError, FomcError, InputError, UnsupportedVersionError

FAST = settings(max_examples=150, deadline=None)


def chunk(tag: bytes, payload: bytes) -> bytes:
    """A chunk built from the spec in docs/bitstream.md, independently of the module."""
    head = tag + struct.pack("<I", len(payload))
    return head + payload + struct.pack("<I", zlib.crc32(head + payload))


def split_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 5
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos + 4)
        out.append((data[pos : pos + 4], data[pos + 8 : pos + 8 + n]))
        pos += 12 + n
    return out


def join_chunks(chunks: list[tuple[bytes, bytes]], version: int = 2) -> bytes:
    return b"FOMC" + bytes([version]) + b"".join(chunk(t, p) for t, p in chunks)


def walk_motion(t: int, k: int = 10, jac: bool = True, seed: int = 0) -> QuantizedMotion:
    """Smooth random walk of k keypoints (amplitude ~0.05, jitter 0.002), Jacobians near I."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(-0.6, 0.6, (1, k, 2))
    drift = np.cumsum(rng.normal(0, 0.005, (t, 1, 2)), axis=0)
    values = base + drift + rng.normal(0, 0.002, (t, k, 2))
    jacobians = np.eye(2) + rng.normal(0, 0.01, (t, k, 2, 2)) if jac else None
    return quantize_motion(values, jacobians)


def make_stream(
    frame_count: int = 50, k: int = 10, jac: bool = True, stride: int = 1, images: int = 1
) -> Bitstream:
    motion = walk_motion(motion_frame_count(frame_count, stride), k, jac)
    header = StreamHeader(
        width=256,
        height=256,
        fps=Fraction(25),
        frame_count=frame_count,
        model_name="fomm.vox-256",
        weights_hash=bytes(range(8)),
        num_kp=k,
        relative_motion=True,
        has_jacobians=jac,
        motion_stride=stride,
        adapt_scale=1.25,
        clipped=motion.clipped,
    )
    imgs = [EncodedImage("avif", bytes([i]) * (100 + i)) for i in range(images)]
    motion_frames = motion_frame_count(frame_count, stride)
    keyframes = [
        Keyframe(stride * (i * motion_frames // images), 1.0 + i / 8) for i in range(1, images)
    ]
    return Bitstream(header, imgs, motion, keyframes=keyframes)


@pytest.fixture(scope="module")
def packed() -> bytes:
    return pack(make_stream(frame_count=12, k=3))


# ---------------------------------------------------------------- strategies

printable_text = st.text(
    st.characters(categories=("L", "N", "P", "S"), include_characters=" "), min_size=1
).filter(lambda s: len(s.encode("utf-8")) <= 255 and s.isprintable())


@st.composite
def streams(draw: st.DrawFn) -> Bitstream:
    t = draw(st.integers(1, 50))
    stride = draw(st.integers(1, 255))
    frame_count = draw(st.integers((t - 1) * stride + 1, t * stride))
    k = draw(st.integers(1, 12))
    jac = draw(st.booleans())
    values = draw(hnp.arrays(np.int16, (t, k, 2)))
    jacobians = draw(hnp.arrays(np.int16, (t, k, 2, 2))) if jac else None
    clipped = draw(st.integers(0, t * k * (6 if jac else 2)))
    header = StreamHeader(
        width=draw(st.integers(16, 4096)),
        height=draw(st.integers(16, 4096)),
        fps=Fraction(draw(st.integers(1, 2**32 - 1)), draw(st.integers(1, 2**32 - 1))),
        frame_count=frame_count,
        model_name=draw(printable_text),
        weights_hash=draw(st.binary(min_size=8, max_size=8)),
        num_kp=k,
        relative_motion=draw(st.booleans()),
        has_jacobians=jac,
        motion_stride=stride,
        quantization=QuantizationParams(
            draw(st.integers(1, 2**32 - 1)), draw(st.integers(1, 2**32 - 1))
        ),
        adapt_scale=draw(st.floats(0, 2.0**100, width=32, exclude_min=True, allow_infinity=False)),
        clipped=clipped,
    )
    starts = draw(st.lists(st.integers(1, max(1, t - 1)), max_size=3, unique=True))
    keyframes = [
        Keyframe(m * stride, draw(st.floats(0.5, 2.0, width=32))) for m in sorted(starts) if m < t
    ]
    images = draw(
        st.lists(
            st.builds(
                EncodedImage,
                st.sampled_from(["png", "jpeg", "webp", "avif", "av1"]),
                st.binary(min_size=1, max_size=64),
            ),
            min_size=len(keyframes) + 1,
            max_size=len(keyframes) + 1,
        )
    )
    motion = QuantizedMotion(values, jacobians, clipped)
    return Bitstream(header, images, motion, keyframes=keyframes)


# ---------------------------------------------------------------- smoke / round trip


class TestRoundTrip:
    def test_smoke(self) -> None:
        s = make_stream()
        data = pack(s)
        assert data[:5] == b"FOMC\x01"
        assert unpack(data) == s

    @pytest.mark.parametrize("jac", [True, False])
    @pytest.mark.parametrize("frame_count,stride", [(1, 1), (10, 3), (9, 3), (300, 2)])
    def test_variants(self, jac: bool, frame_count: int, stride: int) -> None:
        images = 2 if motion_frame_count(frame_count, stride) > 1 else 1
        s = make_stream(frame_count=frame_count, jac=jac, stride=stride, images=images)
        out = unpack(pack(s))
        assert out == s
        assert out.motion.num_frames == -(-frame_count // stride)

    @FAST
    @given(streams())
    def test_property_round_trip(self, s: Bitstream) -> None:
        data = pack(s)
        out = unpack(data)
        assert out == s
        sizes = section_sizes(data)
        assert sum(sizes.values()) == len(data)
        keyframe_table = 4 + 8 * len(s.keyframes) if s.keyframes else 0
        assert sizes["header"] == 44 + len(s.header.model_name.encode()) + keyframe_table
        assert sizes["image"] == sum(len(i.data) + 1 for i in s.source_images)

    def test_accepts_bytearray_and_memoryview(self, packed: bytes) -> None:
        assert unpack(bytearray(packed)) == unpack(memoryview(packed)) == unpack(packed)

    def test_motion_frame_count(self) -> None:
        assert motion_frame_count(10, 3) == 4  # frames 0, 3, 6, 9
        assert motion_frame_count(9, 3) == 3  # frames 0, 3, 6; 7 and 8 follow frame 6
        assert motion_frame_count(1, 255) == 1

    def test_adapt_scale_is_float32(self) -> None:
        s = make_stream()
        s.header.adapt_scale = 0.1
        assert unpack(pack(s)).header.adapt_scale == float(np.float32(0.1))

    def test_section_sizes(self) -> None:
        packed = pack(make_stream(frame_count=12, k=3, images=2))
        sizes = section_sizes(packed)
        assert set(sizes) == {"container", "header", "image", "motion", "base", "audio"}
        assert sizes["audio"] == sizes["base"] == 0
        assert sum(sizes.values()) == len(packed)
        assert sizes["container"] == 5 + 12 * 6  # HEAD, 2x SIMG, KEYF, MOTN, END
        assert sizes["header"] == 44 + len("fomm.vox-256") + 4 + 8  # HEAD + one KEYF entry
        assert sizes["image"] == 101 + 102


# ---------------------------------------------------------------- exact layout


class TestLayout:
    def test_header_bytes(self) -> None:
        s = make_stream(frame_count=7, k=2, stride=2)
        s.header.fps = Fraction(30000, 1001)
        chunks = split_chunks(pack(s))
        assert [t for t, _ in chunks] == [b"HEAD", b"SIMG", b"MOTN", b"END "]
        expected = (
            struct.pack("<HH", 256, 256)
            + struct.pack("<III", 30000, 1001, 7)
            + bytes([2, 2, 0b11])
            + struct.pack("<IIfI", 10_000, 1_000, 1.25, 0)
            + bytes(range(8))
            + bytes([12])
            + b"fomm.vox-256"
        )
        assert chunks[0][1] == expected
        assert chunks[1][1] == bytes([3]) + b"\x00" * 100
        assert chunks[3][1] == b""

    def test_motion_transform(self) -> None:
        s = make_stream(frame_count=20, k=3)
        motn = dict(split_chunks(pack(s)))[b"MOTN"]
        raw = lzma.decompress(motn, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])
        m = s.motion
        x = np.concatenate([m.values.reshape(20, -1), m.jacobians.reshape(20, -1)], axis=1)
        d = np.diff(x.astype(np.int64), axis=0, prepend=0) & 0xFFFF  # wrap to 16 bits
        d = np.where(d >= 0x8000, d - 0x10000, d)
        z = ((d << 1) ^ (d >> 15)) & 0xFFFF  # zigzag
        planar = z.T.ravel()  # channel-major: each channel's time series contiguous
        expected = (planar >> 8).astype(np.uint8).tobytes() + (planar & 0xFF).astype(
            np.uint8
        ).tobytes()
        assert raw == expected
        assert len(raw) == 20 * 3 * (2 + 4) * 2

    def test_dictionary_cap_gives_the_preset_stream(self) -> None:
        s = make_stream(frame_count=250)
        motn = dict(split_chunks(pack(s)))[b"MOTN"]
        raw = lzma.decompress(motn, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])
        preset = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
        assert lzma.compress(raw, format=lzma.FORMAT_RAW, filters=preset) == motn

    def test_extreme_values_wrap_exactly(self) -> None:
        s = make_stream(frame_count=4, k=1, jac=False)
        s.motion.values[:] = np.array([32767, -32768, 32767, -32768], np.int16)[:, None, None]
        assert unpack(pack(s)) == s

    def test_ancillary_chunk_is_skipped(self, packed: bytes) -> None:
        chunks = split_chunks(packed)
        chunks.insert(2, (b"tEXt", b"hello"))
        data = join_chunks(chunks)
        assert unpack(data) == unpack(packed)
        assert section_sizes(data)["container"] == section_sizes(packed)["container"] + 17


# ---------------------------------------------------------------- wrong input on write


def _with(**changes: object) -> Bitstream:
    s = make_stream(frame_count=10, k=2)
    for key, value in changes.items():
        setattr(s.header, key, value)
    return s


class TestWriteValidation:
    @pytest.mark.parametrize(
        "field,value",
        [
            ("width", 15),
            ("width", 4097),
            ("height", 0),
            ("width", 256.0),
            ("fps", Fraction(0)),
            ("fps", Fraction(-25)),
            ("fps", 25.0),
            ("fps", Fraction(2**32, 1)),
            ("frame_count", 0),
            ("motion_stride", 0),
            ("motion_stride", 256),
            ("model_name", ""),
            ("model_name", "x" * 256),
            ("model_name", "bad\nname"),
            ("weights_hash", b"1234567"),
            ("weights_hash", "12345678"),
            ("num_kp", 0),
            ("num_kp", 256),
            ("relative_motion", 1),
            ("adapt_scale", 0.0),
            ("adapt_scale", -1.0),
            ("adapt_scale", float("nan")),
            ("adapt_scale", float("inf")),
            ("adapt_scale", 1e39),
            ("adapt_scale", 1e-50),
            ("clipped", -1),
            ("clipped", 10 * 2 * 6 + 1),
        ],
    )
    def test_bad_header_field(self, field: str, value: object) -> None:
        with pytest.raises(ValueError, match=field):
            pack(_with(**{field: value}))

    def test_inconsistent_stream(self) -> None:
        s = make_stream(frame_count=10, k=2)
        with pytest.raises(ValueError, match="has_jacobians"):
            pack(dataclasses.replace(s, motion=walk_motion(10, 2, jac=False)))
        with pytest.raises(ValueError, match="num_kp"):
            pack(dataclasses.replace(s, motion=walk_motion(10, 3)))
        with pytest.raises(ValueError, match="ceil"):
            pack(dataclasses.replace(s, motion=walk_motion(9, 2)))
        with pytest.raises(ValueError, match="clipped"):
            pack(dataclasses.replace(s, motion=dataclasses.replace(s.motion, clipped=1)))
        with pytest.raises(ValueError, match="at least one source image"):
            pack(dataclasses.replace(s, source_images=[]))
        with pytest.raises(ValueError, match="no data"):
            pack(dataclasses.replace(s, source_images=[EncodedImage("png", b"")]))

    def test_unknown_image_codec(self) -> None:
        with pytest.raises(ValueError, match="unknown image codec"):
            EncodedImage("gif", b"GIF89a")

    def test_motion_limit(self) -> None:
        s = make_stream(frame_count=1, k=255)
        s.header.frame_count = 2**32 - 1
        with pytest.raises(ValueError, match="exceeds the limit"):
            pack(s)


# ---------------------------------------------------------------- damaged streams


class TestDamage:
    @FAST
    @given(st.data())
    def test_any_single_byte_corruption_is_detected(
        self, packed: bytes, data: st.DataObject
    ) -> None:
        pos = data.draw(st.integers(0, len(packed) - 1), label="position")
        xor = data.draw(st.integers(1, 255), label="xor")
        damaged = bytearray(packed)
        damaged[pos] ^= xor
        with pytest.raises(BitstreamError):
            unpack(bytes(damaged))

    def test_every_position_corrupted_is_detected(self, packed: bytes) -> None:
        for pos in range(len(packed)):
            for xor in (0x01, 0x80, 0xFF):
                damaged = bytearray(packed)
                damaged[pos] ^= xor
                with pytest.raises(BitstreamError):
                    unpack(bytes(damaged))

    @FAST
    @given(st.data())
    def test_any_truncation_is_detected(self, packed: bytes, data: st.DataObject) -> None:
        n = data.draw(st.integers(0, len(packed) - 1), label="length")
        with pytest.raises(BitstreamError):
            unpack(packed[:n])

    def test_every_truncation_is_detected(self, packed: bytes) -> None:
        for n in range(len(packed)):
            with pytest.raises(BitstreamError):
                unpack(packed[:n])
            with pytest.raises(BitstreamError):
                section_sizes(packed[:n])

    def test_truncation_at_chunk_boundary(self, packed: bytes) -> None:
        end_chunk = chunk(b"END ", b"")
        assert packed.endswith(end_chunk)
        with pytest.raises(BitstreamError, match="truncated"):
            unpack(packed[: -len(end_chunk)])

    def test_trailing_data(self, packed: bytes) -> None:
        with pytest.raises(BitstreamError, match="trailing"):
            unpack(packed + b"\x00")

    @FAST
    @given(st.binary(max_size=400))
    def test_garbage_raises_only_bitstream_error(self, garbage: bytes) -> None:
        for data in (garbage, b"FOMC\x01" + garbage):
            with pytest.raises(BitstreamError):
                unpack(data)

    @FAST
    @given(
        st.lists(
            st.tuples(
                st.sampled_from([b"HEAD", b"SIMG", b"MOTN", b"END ", b"tEXt", b"XXXX", b"\x00ab!"]),
                st.binary(max_size=80),
            ),
            max_size=6,
        )
    )
    def test_well_framed_garbage_raises_only_bitstream_error(
        self, chunks: list[tuple[bytes, bytes]]
    ) -> None:
        with contextlib.suppress(BitstreamError):
            unpack(join_chunks(chunks))

    @FAST
    @given(st.binary(min_size=1, max_size=200), st.binary(min_size=0, max_size=60))
    def test_garbage_motion_with_valid_crc(self, motn: bytes, head_tail: bytes) -> None:
        chunks = split_chunks(pack(make_stream(frame_count=5, k=2)))
        chunks[2] = (b"MOTN", motn)
        with pytest.raises(BitstreamError):
            unpack(join_chunks(chunks))
        chunks[0] = (b"HEAD", chunks[0][1][:44] + head_tail)
        with contextlib.suppress(BitstreamError):
            unpack(join_chunks(chunks))


class TestRejects:
    @pytest.mark.parametrize("version", [0, 6, 255])
    def test_wrong_version(self, packed: bytes, version: int) -> None:
        data = packed[:4] + bytes([version]) + packed[5:]
        with pytest.raises(UnsupportedVersionError, match=f"version {version}"):
            unpack(data)

    def test_bad_magic_is_not_a_version_error(self, packed: bytes) -> None:
        with pytest.raises(BitstreamError, match="magic") as info:
            unpack(b"RIFF" + packed[4:])
        assert not isinstance(info.value, UnsupportedVersionError)

    def _replace(self, packed: bytes, tag: bytes, payload: bytes) -> bytes:
        return join_chunks([(t, payload if t == tag else p) for t, p in split_chunks(packed)])

    def test_unknown_flag_bits(self, packed: bytes) -> None:
        head = bytearray(dict(split_chunks(packed))[b"HEAD"])
        head[18] |= 0x04
        with pytest.raises(BitstreamError, match="flag"):
            unpack(self._replace(packed, b"HEAD", bytes(head)))

    @pytest.mark.parametrize(
        "offset,value,match",
        [
            (0, struct.pack("<H", 8), "width"),
            (8, struct.pack("<I", 0), "frame rate"),
            (12, struct.pack("<I", 0), "frame_count"),
            (16, b"\x00", "motion_stride"),
            (17, b"\x00", "num_kp"),
            (19, struct.pack("<I", 0), "scale"),
            (27, struct.pack("<f", float("nan")), "adapt_scale"),
            (43, b"\x05", "HEAD payload"),
            (44, b"\xff", "UTF-8"),
        ],
    )
    def test_bad_header_fields_on_read(
        self, packed: bytes, offset: int, value: bytes, match: str
    ) -> None:
        head = bytearray(dict(split_chunks(packed))[b"HEAD"])
        head[offset : offset + len(value)] = value
        with pytest.raises(BitstreamError, match=match):
            unpack(self._replace(packed, b"HEAD", bytes(head)))

    def test_unknown_critical_chunk(self, packed: bytes) -> None:
        chunks = split_chunks(packed)
        chunks.insert(1, (b"XTRA", b"data"))
        with pytest.raises(BitstreamError, match="unknown critical chunk"):
            unpack(join_chunks(chunks))

    @pytest.mark.parametrize(
        "order,match",
        [
            ([b"SIMG", b"HEAD", b"MOTN", b"END "], "first chunk must be HEAD"),
            ([b"HEAD", b"MOTN", b"SIMG", b"END "], "before any SIMG"),
            ([b"HEAD", b"SIMG", b"END ", b"MOTN"], "END chunk before the motion chunk"),
            ([b"HEAD", b"HEAD", b"SIMG", b"MOTN", b"END "], "duplicate HEAD"),
            ([b"HEAD", b"SIMG", b"MOTN", b"MOTN", b"END "], "more than one motion"),
            ([b"HEAD", b"SIMG", b"MOTN", b"SIMG", b"END "], "SIMG chunk after the KEYF or motion"),
        ],
    )
    def test_chunk_order(self, packed: bytes, order: list[bytes], match: str) -> None:
        chunks = dict(split_chunks(packed))
        with pytest.raises(BitstreamError, match=match):
            unpack(join_chunks([(t, chunks[t]) for t in order]))

    def test_unknown_image_codec_id(self, packed: bytes) -> None:
        with pytest.raises(BitstreamError, match="codec id 9"):
            unpack(self._replace(packed, b"SIMG", b"\x09abc"))

    def test_motion_of_wrong_size(self) -> None:
        small = dict(split_chunks(pack(make_stream(frame_count=11, k=3))))[b"MOTN"]
        data = self._replace(pack(make_stream(frame_count=12, k=3)), b"MOTN", small)
        with pytest.raises(BitstreamError, match="expected exactly"):
            unpack(data)

    def test_decompression_bomb_refused_before_decompressing(self, packed: bytes) -> None:
        head = bytearray(dict(split_chunks(packed))[b"HEAD"])
        head[12:16] = struct.pack("<I", 2**32 - 1)
        head[17] = 255
        bomb = lzma.compress(
            bytes(1 << 20), format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}]
        )
        data = self._replace(self._replace(packed, b"HEAD", bytes(head)), b"MOTN", bomb)
        t0 = time.perf_counter()
        with pytest.raises(BitstreamError, match="limit"):
            unpack(data)
        assert time.perf_counter() - t0 < 1.0

    def test_decompression_capped_at_expected_size(self, packed: bytes) -> None:
        bomb = lzma.compress(
            bytes(8 << 20), format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}]
        )
        with pytest.raises(BitstreamError, match="expected exactly"):
            unpack(self._replace(packed, b"MOTN", bomb))


# ---------------------------------------------------------------- files


class TestFiles:
    def test_save_load(self, tmp_path: Path) -> None:
        s = make_stream()
        path = tmp_path / "a.fomc"
        n = save(path, s)
        assert n == path.stat().st_size == len(pack(s))
        assert load(path) == s

    def test_refuses_overwrite(self, tmp_path: Path) -> None:
        path = tmp_path / "a.fomc"
        path.write_bytes(b"old")
        with pytest.raises(FomcError, match="exists"):
            save(path, make_stream())
        assert path.read_bytes() == b"old"
        save(path, make_stream(), overwrite=True)
        assert load(path) == make_stream()

    def test_invalid_stream_leaves_no_file(self, tmp_path: Path) -> None:
        s = make_stream()
        s.header.width = 1
        with pytest.raises(ValueError):
            save(tmp_path / "a.fomc", s)
        assert list(tmp_path.iterdir()) == []

    def test_failed_write_leaves_no_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def fail(self: Path, data: bytes) -> int:
            self.open("wb").write(data[:10])
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(Path, "write_bytes", fail)
        with pytest.raises(OSError, match="No space"):
            save(tmp_path / "a.fomc", make_stream())
        assert list(tmp_path.iterdir()) == []

    def test_load_missing_or_unreadable(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="cannot read"):
            load(tmp_path / "missing.fomc")
        with pytest.raises(InputError):
            load(tmp_path)

    def test_load_non_fomc(self, tmp_path: Path, packed: bytes) -> None:
        (tmp_path / "x.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
        with pytest.raises(BitstreamError, match="not a .fomc file"):
            load(tmp_path / "x.mp4")
        (tmp_path / "cut.fomc").write_bytes(packed[:-3])
        with pytest.raises(BitstreamError, match="cut.fomc"):
            load(tmp_path / "cut.fomc")


def test_module_has_no_torch() -> None:
    assert "torch" not in bitstream.__dict__


class TestKeyframes:
    def test_segments_cover_the_stream(self) -> None:
        s = make_stream(frame_count=30, stride=2, images=3)
        out = unpack(pack(s))
        assert out.version == 3
        assert [k.frame for k in out.keyframes] == [10, 20]
        segments = out.segments()
        assert [(a, b) for a, b, _ in segments] == [(0, 10), (10, 20), (20, 30)]
        assert [scale for _, _, scale in segments] == [1.25, 1.125, 1.25]

    @pytest.mark.parametrize(
        "frames,match",
        [
            ([10], "not on a motion frame"),
            ([0], "keyframe frame must be in"),
            ([21, 12], "keyframe frame must be in"),
            ([30], "keyframe frame must be in"),
        ],
    )
    def test_misplaced_keyframes_are_refused(self, frames: list[int], match: str) -> None:
        s = make_stream(frame_count=30, stride=3, images=len(frames) + 1)
        s.keyframes = [Keyframe(f) for f in frames]
        with pytest.raises(ValueError, match=match):
            pack(s)
        chunks = split_chunks(pack(make_stream(frame_count=30, stride=3, images=len(frames) + 1)))
        table = struct.pack("<I", len(frames)) + b"".join(
            struct.pack("<If", f, 1.0) for f in frames
        )
        bad = [(t, table if t == b"KEYF" else p) for t, p in chunks]
        with pytest.raises(BitstreamError, match=match):
            unpack(join_chunks(bad, version=3))

    def test_a_keyframe_table_must_match_the_images(self) -> None:
        chunks = split_chunks(pack(make_stream(frame_count=30, stride=2, images=3)))
        one_image_less = [c for i, c in enumerate(chunks) if i != 2]
        with pytest.raises(BitstreamError, match="3 source images need 2|2 source images need 1"):
            unpack(join_chunks(one_image_less, version=3))
        no_table = [c for c in chunks if c[0] != b"KEYF"]
        with pytest.raises(BitstreamError, match="no KEYF chunk"):
            unpack(join_chunks(no_table, version=3))
        with pytest.raises(BitstreamError, match="KEYF chunk in a version 2 stream"):
            unpack(join_chunks(chunks, version=2))
        single = split_chunks(pack(make_stream(frame_count=30)))
        with pytest.raises(BitstreamError, match="without keyframes"):
            unpack(join_chunks(single, version=3))
        truncated = [(t, p[:-3] if t == b"KEYF" else p) for t, p in chunks]
        with pytest.raises(BitstreamError, match="does not hold 2 entries"):
            unpack(join_chunks(truncated, version=3))
