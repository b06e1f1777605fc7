"""The codec: video file <-> ``.fomc`` bitstream, and the public Python API.

::

    Encoder
      video --read_frames(crop)--> 256x256 RGB, streamed in batches
        frame 0 --image_codec--> source image --decode--> kp_detector --> kp_source
        every frame --kp_detector (fp32)--> kp_driving
        relative_motion(kp_driving, kp_driving[0]) --quantize (int16)--> bitstream.pack --> .fomc

    Decoder
      .fomc --unpack--> header, source image, int16 motion --dequantize--> motion
        source --kp_detector (fp32)--> kp_source;  source --generator.encode_source--> features
        motion --apply_relative_motion(kp_source)--> kp per sent frame
          --generator.decode (bf16)--> frames
        motion_stride > 1: the frames in between come from the frame interpolator
          between the generated neighbours (``inbetween="interpolator"``, the default:
          ffi-flow) or from the generator driven by linearly interpolated motion
          (``"keypoints"``); ``fill=False`` keeps the sent frames only
        --> VideoWriter --> .mp4

    A lattice warp (the default model, :mod:`fomcodec.nets.lattice_warp`) takes the place of
    the keypoint detector and the generator: the encoder measures each sent frame's lattice
    against the segment's decoded source image (and fits it, preset medium), the decoder warps
    that source by it (:class:`LatticeRenderer`); everything else is the same.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import pairwise

import numpy as np
import torch

from fomcodec.codec import bitstream as bs
from fomcodec.codec.audio import DEFAULT_AUDIO_BITRATE, AudioFeed, encode_audio
from fomcodec.codec.base_layer import (
    BASE_FRAME_SIZE,
    BASE_LAYER_MODEL_NAME,
    DETAIL_FUSER,
    BaseLayerSettings,
)
from fomcodec.codec.base_video import BaseLayerWriter
from fomcodec.codec.frame_interpolation import (
    InterpolatorSpec,
    MiddleFrameSynthesizer,
    fill_frames,
    is_power_of_two,
)
from fomcodec.codec.fusion import fused_frames, interpolates_dropped_frames
from fomcodec.codec.image_codec import DEFAULT_CODEC, DEFAULT_QUALITY, decode_image, encode_image
from fomcodec.codec.keyframes import DEFAULT_REFRESH_DB, Check, RefreshMonitor, check_step
from fomcodec.codec.motion import apply_relative_motion, movement_scale, relative_motion
from fomcodec.codec.presets import DEFAULT_LATTICE_PRESET, DEFAULT_PRESET
from fomcodec.codec.presets import preset as get_preset
from fomcodec.codec.quantization import QuantizationParams, dequantize_motion, quantize_motion
from fomcodec.codec.refinement import Render, fomm_render, quantised_motion, refine_motion
from fomcodec.errors import FomcError, InputError, ModelMismatchError
from fomcodec.fileio import check_output_path, write_bytes_atomic
from fomcodec.media.crop import CropBox, CropSchedule
from fomcodec.media.shots import DEFAULT_CUT_THRESHOLD, CutDetector
from fomcodec.media.video_io import VideoOutput, iter_batches, probe_video, read_frames
from fomcodec.nets.fomm import FOMM
from fomcodec.nets.fuser import BaseLayerFuser
from fomcodec.nets.keypoint_detector import Keypoints
from fomcodec.nets.lattice_warp import LatticeWarp
from fomcodec.runtime import autocast, bf16_supported, resolve_device
from fomcodec.tensors import frames_to_images, image_psnr, images_to_frames
from fomcodec.zoo import DEFAULT_MODEL, MotionModel, load_fuser, load_model

ModelSpec = str | os.PathLike | MotionModel
ProgressCallback = Callable[[int], None]

INBETWEEN_METHODS = ("interpolator", "keypoints")
#: Measured in docs/interpolation.md: as good as averaged keypoints and faster.
DEFAULT_INBETWEEN = "interpolator"


def _resolve_model(model: ModelSpec | None, device: torch.device) -> MotionModel:
    if isinstance(model, MotionModel):
        return model.to(device).eval()
    return load_model(DEFAULT_MODEL if model is None else model, device=device)


@dataclass
class CodingStats:
    """What one encode or decode did; ``summary()`` is the CLI's closing line."""

    action: str
    frames: int
    fps: Fraction
    total_bytes: int
    sizes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    clipped: int = 0
    keyframes: int = 1

    @property
    def duration(self) -> float:
        return self.frames / float(self.fps)

    def kbps(self, part: str | None = None) -> float:
        """Bit rate of the whole stream, or of one part (``image``, ``motion``...)."""
        size = self.total_bytes if part is None else self.sizes.get(part, 0)
        return size * 8 / 1000 / self.duration if self.duration > 0 else 0.0

    def summary(self) -> str:
        speed = self.frames / self.seconds if self.seconds > 0 else float("inf")
        parts = ", ".join(
            f"{k} {self.sizes[k]} B" for k in ("image", "motion", "audio") if self.sizes.get(k)
        )
        line = (
            f"{self.action} {self.frames} frames ({self.duration:.2f} s) -> "
            f"{self.total_bytes} B, {self.kbps():.2f} kbit/s ({parts}) "
            f"in {self.seconds:.1f} s, {speed:.1f} frames/s"
        )
        if self.keyframes > 1:
            line += f"; {self.keyframes} keyframes"
        if self.clipped:
            line += f"; {self.clipped} values clipped to the int16 range"
        return line


class SourceRenderer:
    """The generator bound to one decoded source image: its keypoints and features are
    computed once, then frames are rendered for any motion. The decoder renders every frame
    with it; the encoder renders a few, to see what the decoder will show (keyframe refresh).
    """

    def __init__(
        self,
        model: FOMM,
        source_rgb: np.ndarray,
        device: torch.device,
        bf16: bool,
        relative: bool = True,
        scale: float = 1.0,
    ) -> None:
        _check_source_size(model, source_rgb)
        self.model = model
        self.device = device
        self.bf16 = bf16
        self.relative = relative
        self.scale = scale
        self.source = frames_to_images(source_rgb[None], device)
        with torch.no_grad():
            self.kp_source = model.kp_detector(self.source)
        self._generator_input = (
            self.source.contiguous(memory_format=torch.channels_last)
            if device.type == "cpu"
            else self.source
        )
        self._features: tuple[object, torch.Tensor | None] | None = None

    @torch.no_grad()
    def _source_features(self) -> tuple[object, torch.Tensor | None]:
        """The generator's encoding of the source (computed on first use: a trial keyframe
        that is never rendered does not pay for it)."""
        if self._features is None:
            generator = self.model.generator
            with autocast(self.device, self.bf16):
                features = generator.encode_source(self._generator_input)
                small = (
                    generator.dense_motion_network.downsample(self._generator_input)
                    if generator.dense_motion_network is not None
                    else None
                )
            self._features = (features, small)
        return self._features

    @torch.no_grad()
    def render(self, motion: Keypoints) -> torch.Tensor:
        """Frames (B, 3, H, W) float in [0, 1] for B motion entries (relative motion, or
        absolute keypoints when ``relative`` is False)."""
        features, small = self._source_features()
        motion = motion.to(self.device)
        kp_driving = (
            apply_relative_motion(motion, self.kp_source, self.scale) if self.relative else motion
        )
        with autocast(self.device, self.bf16):
            out = self.model.generator.decode(
                self._generator_input, features, kp_driving, self.kp_source, small
            )
        return out["prediction"].float().clamp(0, 1)

    def differentiable(self) -> Render:
        """The generator in fp32 with autograd, for the encoder's refinement."""
        return fomm_render(
            self.model, self.source, self.kp_source, self.scale if self.relative else None
        )


class LatticeRenderer:
    """The lattice warp bound to one decoded source image (no keypoints: motion is the
    lattice's displacements into this source)."""

    kp_source = None
    scale = 1.0

    def __init__(self, model: LatticeWarp, source_rgb: np.ndarray, device: torch.device) -> None:
        _check_source_size(model, source_rgb)
        self.model = model
        self.device = device
        self.source = frames_to_images(source_rgb[None], device)

    @torch.no_grad()
    def render(self, motion: Keypoints) -> torch.Tensor:
        """Frames (B, 3, H, W) float in [0, 1] for B lattice motion entries."""
        return self.model.warp(self.source, motion.to(self.device)).clamp(0, 1)

    def differentiable(self) -> Render:
        """The warp with autograd, for the encoder's fitting."""
        return lambda motion: self.model.warp(self.source, motion)


Renderer = SourceRenderer | LatticeRenderer


def _check_source_size(model: MotionModel, source_rgb: np.ndarray) -> None:
    size = model.config.image_size
    if source_rgb.shape[:2] != (size, size):
        raise FomcError(
            f"source image is {source_rgb.shape[1]}x{source_rgb.shape[0]}, "
            f"model '{model.model_name}' works at {size}x{size}"
        )


def source_renderer(
    model: MotionModel,
    source_rgb: np.ndarray,
    device: torch.device,
    bf16: bool,
    relative: bool = True,
    scale: float = 1.0,
) -> Renderer:
    """The renderer of ``model`` bound to one decoded source image."""
    if isinstance(model, LatticeWarp):
        return LatticeRenderer(model, source_rgb, device)
    return SourceRenderer(model, source_rgb, device, bf16, relative, scale)


def _rows(kp: Keypoints | None, start: int, end: int) -> Keypoints | None:
    """Frames ``start:end`` of detected keypoints (None for a lattice warp, which has none)."""
    return None if kp is None else kp[start:end]


@dataclass
class _Segment:
    """The source image the encoder is coding against, and its closed-loop checks."""

    start: int
    renderer: Renderer
    kp_initial: Keypoints | None
    monitor: RefreshMonitor | None
    image: bs.EncodedImage | None


class Encoder:
    """Turns frames into a :class:`~fomcodec.codec.bitstream.Bitstream`.

    ::

        frames --kp_detector--> keypoints --relative_motion--> quantize --> pack
        keyframes (frame 0, shot cuts, refresh, max interval) --image codec--> source images

    A new source image (keyframe) starts at a shot cut (``cut_threshold``, see
    :mod:`fomcodec.media.shots`, or a frame in ``shot_starts``), when ``max_keyframe_interval``
    seconds have passed, and, closed loop, where a new source image would render the last
    second ``refresh_db`` dB better than the one in use (:mod:`fomcodec.codec.keyframes`).
    """

    def __init__(
        self,
        model: ModelSpec | None = None,
        device: str | torch.device | None = "auto",
        batch_size: int = 16,
        image_codec: str = DEFAULT_CODEC,
        image_quality: int = DEFAULT_QUALITY,
        quantization: QuantizationParams | None = None,
        relative: bool = True,
        adapt_scale: bool = False,
        motion_stride: int = bs.DEFAULT_MOTION_STRIDE,
        preset: str | None = None,
        motion_coding: str = bs.DEFAULT_MOTION_CODING,
        jacobians: bool = True,
        smoothing: float = 0.0,
        audio_bit_rate: int | None = DEFAULT_AUDIO_BITRATE,
        refresh_db: float | None = DEFAULT_REFRESH_DB,
        max_keyframe_interval: float | None = None,
        cut_threshold: float | None = DEFAULT_CUT_THRESHOLD,
        base_layer: BaseLayerSettings | None = None,
    ) -> None:
        if batch_size < 1 or motion_stride < 1:
            raise ValueError("batch_size and motion_stride must be positive")
        if motion_coding not in bs.MOTION_CODINGS:
            raise ValueError(
                f"motion_coding must be one of {bs.MOTION_CODINGS}, not {motion_coding!r}"
            )
        if preset is not None:
            get_preset(preset)  # an unknown name fails before a model is loaded
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, not {smoothing}")
        for name, value in (
            ("refresh_db", refresh_db),
            ("max_keyframe_interval", max_keyframe_interval),
            ("cut_threshold", cut_threshold),
        ):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None (off), not {value}")
        self.motion_coding = motion_coding
        self.jacobians = jacobians
        self.smoothing = smoothing
        self.audio_bit_rate = audio_bit_rate
        self.refresh_db = refresh_db
        self.max_keyframe_interval = max_keyframe_interval
        self.cut_threshold = cut_threshold
        self.device = resolve_device(device)
        self.bf16 = bf16_supported(self.device)
        self.base_layer = base_layer
        # a base layer stream carries no keypoints: no model to load
        self.model = None if base_layer is not None else _resolve_model(model, self.device)
        self.lattice = isinstance(self.model, LatticeWarp)
        self.preset = get_preset(
            preset or (DEFAULT_LATTICE_PRESET if self.lattice else DEFAULT_PRESET)
        )
        self.frame_size = BASE_FRAME_SIZE if self.model is None else self.model.config.image_size
        self._fuser_identity = (BASE_LAYER_MODEL_NAME, bytes(8))
        # an adaptive frame rate judges dropped frames as the decoder makes them
        self._synthesize: MiddleFrameSynthesizer | None = None
        if base_layer is not None:
            base_layer.check(self.frame_size)
            if base_layer.fuser != DETAIL_FUSER:
                fuser = load_fuser(base_layer.fuser)
                self._fuser_identity = (fuser.model_name, fuser.weights_hash)
            if base_layer.adapt_db is not None:
                self._synthesize = MiddleFrameSynthesizer(device=self.device)
        self.batch_size = batch_size
        self.image_codec = image_codec
        self.image_quality = image_quality
        self.quantization = quantization or _default_quantization(self.model, motion_coding)
        # lattice motion is always into the segment's own source: no relative form, no scale
        self.relative = relative and not self.lattice
        self.adapt_scale = adapt_scale and not self.lattice
        self.motion_stride = motion_stride

    @torch.no_grad()
    def _keypoints(self, frames: torch.Tensor) -> Keypoints | None:
        """Detected keypoints of ``frames`` (None for a lattice warp: its motion is measured
        against each segment's source)."""
        return None if self.lattice else self.model.kp_detector(frames)

    def _start_segment(
        self, frame: np.ndarray, kp_frame: Keypoints | None, index: int, coded: bool = True
    ) -> _Segment:
        """A keyframe at ``frame``; ``coded=False``: a trial one, drawn from the frame itself
        rather than its coded image (coding an AV1 image takes about half a second)."""
        image = encode_image(frame, self.image_codec, self.image_quality) if coded else None
        source = decode_image(image) if image is not None else frame
        renderer = source_renderer(self.model, source, self.device, self.bf16, self.relative)
        if self.relative and self.adapt_scale:
            renderer.scale = movement_scale(renderer.kp_source, kp_frame)
        monitor = RefreshMonitor(self.refresh_db) if self.refresh_db else None
        return _Segment(index, renderer, kp_frame, monitor, image)

    def _detected_motion(
        self, segment: _Segment, kp: Keypoints | None, targets: torch.Tensor
    ) -> Keypoints:
        """Motion as ``segment`` sends it before refinement: detected keypoints relative to
        its first frame (or absolute), without Jacobians if none are sent; for a lattice
        warp, the lattice measured from ``targets`` into the segment's source."""
        if self.lattice:
            return self.model.estimate(targets, segment.renderer.source)
        motion = relative_motion(kp, segment.kp_initial) if self.relative else kp
        return motion if self.jacobians else Keypoints(motion.value)

    def _motion(self, segment: _Segment, kp: Keypoints | None, targets: torch.Tensor) -> Keypoints:
        """What is sent for these frames of ``segment``: the detected motion, refined against
        ``targets`` by the preset."""
        motion = self._detected_motion(segment, kp, targets)
        if self.preset.refine_steps:
            motion, _ = refine_motion(
                segment.renderer.differentiable(),
                motion,
                targets,
                self.preset.refine_steps,
                self.preset.learning_rate,
                self.quantization,
                frozen=self.model,
            )
        return motion

    def _render_psnr(
        self, segment: _Segment, motion: Keypoints, targets: torch.Tensor
    ) -> list[float]:
        """PSNR of what the decoder will show for ``motion`` in ``segment``."""
        rendered = segment.renderer.render(quantised_motion(motion, self.quantization))
        return [float(p) for p in image_psnr(rendered, targets)]

    def _refresh_point(
        self,
        segment: _Segment,
        frames: np.ndarray,
        kp: Keypoints | None,
        motion: Keypoints,
        targets: torch.Tensor,
        first_frame: int,
        every: int,
    ) -> int | None:
        """Closed loop (:mod:`fomcodec.codec.keyframes`) over these sent frames (``frames``
        RGB, ``kp`` detected, ``motion`` to be sent; ``first_frame`` is the first's index;
        every ``every``-th frame of the segment is checked): the first where a new keyframe
        is worth it, or None."""
        monitor = segment.monitor
        if monitor is None:
            return None
        offsets = [
            i
            for i in range(len(targets))
            if (first_frame + i * self.motion_stride - segment.start) % every == 0
            and first_frame + i * self.motion_stride > segment.start
        ]
        if not offsets:
            return None
        scores = self._render_psnr(segment, motion[offsets], targets[offsets])
        for offset, psnr in zip(offsets, scores, strict=True):
            if monitor.try_due():
                index = first_frame + offset * self.motion_stride
                candidate = self._start_segment(
                    frames[offset], _rows(kp, offset, offset + 1), index, coded=False
                )
                recent = list(monitor.recent)
                targets_past = torch.cat([c.target for c in recent])
                kp_past = None if kp is None else Keypoints.cat([c.keypoints for c in recent])
                again = self._detected_motion(candidate, kp_past, targets_past)
                if monitor.worth_it(self._render_psnr(candidate, again, targets_past)):
                    return offset
            monitor.record(Check(targets[offset : offset + 1], _rows(kp, offset, offset + 1), psnr))
        return None

    def encode_frames(
        self,
        frames: Iterable[np.ndarray],
        fps: Fraction,
        progress: ProgressCallback | None = None,
        shot_starts: Iterable[int] = (),
    ) -> bs.Bitstream:
        """Encode an iterable of (S, S, 3) uint8 RGB frames at :attr:`frame_size` S (the
        model's); ``shot_starts``: frames known to start a new shot (each gets a keyframe)."""
        if self.base_layer is not None:
            return self._encode_base_layer(frames, fps, progress, shot_starts)
        size = self.frame_size
        stride = self.motion_stride
        forced = set(shot_starts)
        cuts, max_gap = self._keyframe_triggers(fps)
        every = check_step(float(fps), stride)
        images: list[bs.EncodedImage] = []
        keyframes: list[bs.Keyframe] = []
        collected: list[Keypoints] = []
        segment: _Segment | None = None
        cut_pending = False
        frame_count = 0
        for batch in iter_batches(frames, self.batch_size):
            if batch.shape[1:] != (size, size, 3):
                raise InputError(f"frames must be {size}x{size} RGB, got {batch.shape[1:]}")
            kept: list[int] = []
            keyframe_at: list[bool] = []
            for i, frame in enumerate(batch):
                is_cut = cuts is not None and cuts.is_cut(frame)
                cut_pending = cut_pending or is_cut or frame_count + i in forced
                if (frame_count + i) % stride == 0:
                    kept.append(i)
                    keyframe_at.append(cut_pending)
                    cut_pending = False
            targets = frames_to_images(batch[kept], self.device)
            kp = self._keypoints(targets) if kept else None
            frame_of = [frame_count + i for i in kept]
            j = 0
            while j < len(kept):
                if segment is None or keyframe_at[j] or frame_of[j] - segment.start >= max_gap:
                    segment = self._start_segment(batch[kept[j]], _rows(kp, j, j + 1), frame_of[j])
                    images.append(segment.image)
                    keyframes.append(bs.Keyframe(segment.start, segment.renderer.scale))
                end = j + 1
                while (
                    end < len(kept)
                    and not keyframe_at[end]
                    and frame_of[end] - segment.start < max_gap
                ):
                    end += 1
                motion = self._motion(segment, _rows(kp, j, end), targets[j:end])
                refresh = self._refresh_point(
                    segment,
                    batch[kept[j:end]],
                    _rows(kp, j, end),
                    motion,
                    targets[j:end],
                    frame_of[j],
                    every,
                )
                if refresh is not None:
                    motion = motion[:refresh]
                    end = j + refresh
                    keyframe_at[end] = True
                collected.append(motion.to("cpu"))
                j = end
            frame_count += len(batch)
            if progress:
                progress(len(batch))
        if segment is None:
            raise InputError("the video has no frames")
        motion = Keypoints.cat(collected)
        if self.smoothing and not self.preset.refine_steps:
            starts = [k.frame // stride for k in keyframes]
            motion = _smooth_segments(motion, starts, self.smoothing)
        quantized = quantize_motion(
            motion.value.numpy(),
            None if motion.jacobian is None else motion.jacobian.numpy(),
            self.quantization,
        )
        header = bs.StreamHeader(
            width=size,
            height=size,
            fps=Fraction(fps),
            frame_count=frame_count,
            model_name=self.model.model_name,
            weights_hash=self.model.weights_hash,
            num_kp=self.model.config.num_kp,
            relative_motion=self.relative,
            has_jacobians=quantized.jacobians is not None,
            motion_stride=stride,
            quantization=self.quantization,
            adapt_scale=keyframes[0].adapt_scale,
            clipped=quantized.clipped,
        )
        return bs.Bitstream(
            header=header,
            source_images=images,
            motion=quantized,
            motion_coding=self.motion_coding,
            keyframes=keyframes[1:],
        )

    def _keyframe_triggers(self, fps: Fraction) -> tuple[CutDetector | None, float]:
        """The cut detector (None: off) and the most frames between two source images."""
        cuts = CutDetector(fps, self.cut_threshold) if self.cut_threshold else None
        if not self.max_keyframe_interval:
            return cuts, math.inf
        return cuts, max(1, round(self.max_keyframe_interval * float(fps)))

    def _encode_base_layer(
        self,
        frames: Iterable[np.ndarray],
        fps: Fraction,
        progress: ProgressCallback | None,
        shot_starts: Iterable[int],
    ) -> bs.Bitstream:
        """A base layer stream: the frames into the AV1 base layer, a source image at the
        first frame, at every shot cut and every ``max_keyframe_interval`` seconds."""
        size = self.frame_size
        writer = BaseLayerWriter(self.base_layer, fps, size, synthesize=self._synthesize)
        forced = set(shot_starts)
        cuts, max_gap = self._keyframe_triggers(fps)
        images: list[bs.EncodedImage] = []
        keyframes: list[bs.Keyframe] = []
        frame_count = 0
        for index, frame in enumerate(frames):
            if frame.shape != (size, size, 3):
                raise InputError(f"frames must be {size}x{size} RGB, got {frame.shape}")
            is_cut = cuts is not None and cuts.is_cut(frame)
            if not keyframes or is_cut or index in forced or index - keyframes[-1].frame >= max_gap:
                images.append(encode_image(frame, self.image_codec, self.image_quality))
                keyframes.append(bs.Keyframe(index))
            writer.add(frame)
            frame_count = index + 1
            if progress:
                progress(1)
        if not frame_count:
            raise InputError("the video has no frames")
        header = bs.StreamHeader(
            width=size,
            height=size,
            fps=Fraction(fps),
            frame_count=frame_count,
            model_name=self._fuser_identity[0],
            weights_hash=self._fuser_identity[1],
            num_kp=1,
            relative_motion=False,
            has_jacobians=False,
        )
        return bs.Bitstream(
            header=header,
            source_images=images,
            motion=None,
            motion_coding=self.motion_coding,
            keyframes=keyframes[1:],
            base=writer.finish(),
        )

    def encode_file(
        self,
        src: str | os.PathLike,
        dst: str | os.PathLike,
        crop: CropBox | CropSchedule | None = None,
        overwrite: bool = False,
        max_frames: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> CodingStats:
        """Encode a video file to a ``.fomc`` file (written atomically), with its sound as
        Opus unless ``audio_bit_rate`` is None (or the file has none). A
        :class:`~fomcodec.media.crop.CropSchedule` crops each shot with its own box and
        starts a keyframe where the box changes."""
        started = time.perf_counter()
        check_output_path(dst, overwrite)
        info = probe_video(src)
        frames = read_frames(src, self.frame_size, crop, max_frames)
        shot_starts = crop.starts if isinstance(crop, CropSchedule) else ()
        stream = self.encode_frames(frames, info.fps, progress, shot_starts)
        if self.audio_bit_rate:
            duration = stream.header.frame_count / float(stream.header.fps)
            stream.audio = encode_audio(src, info.start_time, duration, self.audio_bit_rate)
        data = bs.pack(stream)
        write_bytes_atomic(dst, data, overwrite)
        return CodingStats(
            "encoded",
            stream.header.frame_count,
            stream.header.fps,
            len(data),
            bs.section_sizes(data),
            time.perf_counter() - started,
            stream.header.clipped,
            keyframes=len(stream.source_images),
        )


def _default_quantization(model: MotionModel | None, motion_coding: str) -> QuantizationParams:
    """The coding's default scales; a lattice warp's own value scale with range coding."""
    default = bs.DEFAULT_QUANTIZATION[motion_coding]
    if isinstance(model, LatticeWarp) and motion_coding == "range":
        return QuantizationParams(model.config.value_scale, default.jacobian_scale)
    return default


def smooth_motion(motion: Keypoints, sigma: float) -> Keypoints:
    """Gaussian smoothing of motion along time (``sigma`` in motion frames; the first frame,
    the rest position of relative motion, is kept): detector jitter costs bits and flickers."""
    from scipy.ndimage import gaussian_filter1d

    def smooth(x: torch.Tensor) -> torch.Tensor:
        out = torch.from_numpy(
            gaussian_filter1d(x.numpy().astype(np.float64), sigma, axis=0, mode="nearest")
        ).to(x.dtype)
        out[0] = x[0]
        return out

    return Keypoints(
        smooth(motion.value), None if motion.jacobian is None else smooth(motion.jacobian)
    )


def _smooth_segments(motion: Keypoints, starts: list[int], sigma: float) -> Keypoints:
    """:func:`smooth_motion` within each segment (motion frames ``starts[i]`` up to the next
    start): motion is relative to a different frame in each."""
    bounds = [*starts, len(motion)]
    return Keypoints.cat([smooth_motion(motion[a:b], sigma) for a, b in pairwise(bounds)])


def _interpolate_motion(motion: Keypoints, stride: int, frame_count: int) -> Keypoints:
    """Motion for every output frame from motion sent every ``stride`` frames: linear
    interpolation of values and Jacobians between neighbours, the last one held."""
    if stride == 1:
        return motion
    sent = motion.value.shape[0]
    position = torch.arange(frame_count, dtype=torch.float32) / stride
    lower = position.floor().long().clamp(max=sent - 1)
    upper = (lower + 1).clamp(max=sent - 1)
    weight = (position - lower).clamp(0, 1)

    def blend(x: torch.Tensor) -> torch.Tensor:
        w = weight.view(-1, *([1] * (x.dim() - 1)))
        return x[lower] * (1 - w) + x[upper] * w

    return Keypoints(
        blend(motion.value), None if motion.jacobian is None else blend(motion.jacobian)
    )


class Decoder:
    """Regenerates frames from a :class:`~fomcodec.codec.bitstream.Bitstream`.

    ::

        source image --kp_detector--> kp_source,  --encode_source--> features (once)
        motion --apply_relative_motion--> kp_driving --generator.decode (bf16)--> frames
        frames without motion (motion_stride > 1): ``inbetween`` "interpolator" (default: the
        frame interpolator between the generated neighbours) or "keypoints" (the generator
        from linearly interpolated motion); ``fill=False``: the sent frames only
        base layer streams: the frames the base layer dropped come from the interpolator too
        (``inbetween="keypoints"``: blended linearly)
    """

    def __init__(
        self,
        model: ModelSpec | None = None,
        device: str | torch.device | None = "auto",
        batch_size: int = 8,
        bf16: bool | None = None,
        fill: bool = True,
        inbetween: str | None = None,
        interpolator: InterpolatorSpec | None = None,
        audio: bool = True,
        fuser: str | os.PathLike | BaseLayerFuser | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.audio = audio
        inbetween = inbetween or DEFAULT_INBETWEEN
        if inbetween not in INBETWEEN_METHODS:
            raise ValueError(f"inbetween must be one of {INBETWEEN_METHODS}, not {inbetween!r}")
        self.device = resolve_device(device)
        self._model_spec = model
        self._model = model if isinstance(model, MotionModel) else None
        self.batch_size = batch_size
        self.bf16 = bf16_supported(self.device) if bf16 is None else bf16
        self.fill = fill
        self.inbetween = inbetween
        self._interpolator_spec = interpolator
        self._synthesizer: MiddleFrameSynthesizer | None = None
        self._fuser_spec = fuser
        self._fuser: BaseLayerFuser | None = fuser if isinstance(fuser, BaseLayerFuser) else None

    def inbetween_method(self, header: bs.StreamHeader) -> str | None:
        """How the frames without motion are made for this stream: ``"interpolator"``,
        ``"keypoints"`` (also for strides that are not powers of two, which the interpolator
        cannot fill), or None (nothing to fill, or ``fill=False``)."""
        if header.motion_stride == 1 or not self.fill:
            return None
        if self.inbetween == "interpolator" and is_power_of_two(header.motion_stride):
            return "interpolator"
        return "keypoints"

    def uses_interpolator(self, stream: bs.Bitstream) -> bool:
        """Whether decoding ``stream`` runs the frame interpolator: for a keypoint stream's
        frames without motion, or for the frames a base layer drops (``"keypoints"``:
        blended instead)."""
        if stream.base is None:
            return self.inbetween_method(stream.header) == "interpolator"
        return self.inbetween == "interpolator" and interpolates_dropped_frames(stream.base)

    def output_frame_count(self, header: bs.StreamHeader) -> int:
        """Frames the decoded video has: all of them, or only the sent ones (``fill=False``)."""
        if self.fill:
            return header.frame_count
        return -(-header.frame_count // header.motion_stride)

    def output_fps(self, header: bs.StreamHeader) -> Fraction:
        return header.fps if self.fill else header.fps / header.motion_stride

    def synthesizer(self) -> MiddleFrameSynthesizer:
        """The frame interpolator (loaded on first use)."""
        if self._synthesizer is None:
            self._synthesizer = MiddleFrameSynthesizer(self._interpolator_spec, self.device)
        return self._synthesizer

    def model_for(self, header: bs.StreamHeader) -> MotionModel:
        """The decoder's model, loaded by the stream's model name unless one was given;
        :class:`ModelMismatchError` unless its weights are those the stream was made with."""
        if self._model is None:
            spec = self._model_spec if self._model_spec is not None else header.model_name
            self._model = _resolve_model(spec, self.device)
        model = self._model
        if self.device.type == "cpu" and isinstance(model, FOMM):
            model.generator.to(memory_format=torch.channels_last)
        if model.weights_hash != header.weights_hash:
            raise ModelMismatchError(
                f"stream was made with model '{header.model_name}' (weights "
                f"{header.weights_hash.hex()}), but the decoder has '{model.model_name}' "
                f"(weights {model.weights_hash.hex()}); pass the encoder's model with --model"
            )
        if model.config.num_kp != header.num_kp:
            raise ModelMismatchError(
                f"stream has {header.num_kp} keypoints, model "
                f"'{model.model_name}' {model.config.num_kp}"
            )
        return model

    def fuser_for(self, stream: bs.Bitstream) -> BaseLayerFuser | None:
        """The learned fuser a base layer stream names (loaded by its name unless one was
        given; :class:`ModelMismatchError` unless its weights are the stream's), or None for
        the ``detail`` fuser."""
        if stream.base is None or stream.base.fuser == "detail":
            return None
        header = stream.header
        if self._fuser is None:
            spec = self._fuser_spec if self._fuser_spec is not None else header.model_name
            fuser = load_fuser(spec, self.device)
            self._fuser = fuser.to(memory_format=torch.channels_last)
        if self._fuser.weights_hash != header.weights_hash:
            raise ModelMismatchError(
                f"stream was made for fuser '{header.model_name}' (weights "
                f"{header.weights_hash.hex()}), but the decoder has '{self._fuser.model_name}' "
                f"(weights {self._fuser.weights_hash.hex()})"
            )
        return self._fuser

    def decode_stream(
        self, stream: bs.Bitstream, progress: ProgressCallback | None = None
    ) -> Iterator[np.ndarray]:
        """Yield decoded (H, W, 3) uint8 frames in stacks of ``batch_size`` (the last one may
        be shorter), across keyframes and whatever the in-between method."""
        if stream.base is not None:
            batches = self._decode_base_layer(stream)
        else:
            batches = (images_to_frames(images) for images in self._decode_keypoints(stream))
        frames = (frame for batch in batches for frame in batch)
        for out in iter_batches(frames, self.batch_size):
            if progress:
                progress(len(out))
            yield out

    @torch.no_grad()
    def _decode_keypoints(self, stream: bs.Bitstream) -> Iterator[torch.Tensor]:
        """A keypoint stream's frames as (B, 3, H, W) image batches of any size."""
        header = stream.header
        model = self.model_for(header)
        stride = header.motion_stride
        values, jacobians = dequantize_motion(stream.motion, header.quantization)
        motion = Keypoints(
            torch.from_numpy(values), None if jacobians is None else torch.from_numpy(jacobians)
        )
        method = self.inbetween_method(header)
        for (start, end, scale), image in zip(stream.segments(), stream.source_images, strict=True):
            renderer = source_renderer(
                model, decode_image(image), self.device, self.bf16, header.relative_motion, scale
            )
            frames = end - start
            segment_motion = motion[start // stride : bs.motion_frame_count(end, stride)]
            if method == "keypoints":
                segment_motion = _interpolate_motion(segment_motion, stride, frames)
            generated = (
                renderer.render(segment_motion[i : i + self.batch_size])
                for i in range(0, len(segment_motion), self.batch_size)
            )
            if method == "interpolator":
                generated = fill_frames(generated, stride, frames, self.synthesizer())
            yield from generated

    def _decode_base_layer(self, stream: bs.Bitstream) -> Iterator[np.ndarray]:
        """A base layer stream's frames, fused with its source images, in batches."""
        network = self.fuser_for(stream)
        synthesize = self.synthesizer() if self.uses_interpolator(stream) else None
        yield from fused_frames(stream, network, self.batch_size, self.bf16, synthesize)

    def decode_file(
        self,
        src: str | os.PathLike | bs.Bitstream,
        dst: str | os.PathLike,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
        output: VideoOutput | None = None,
    ) -> CodingStats:
        """Decode a ``.fomc`` file (or a stream already read from one) to a video file
        (written atomically, as ``output`` says: default yuv420p H.264 at CRF 18)."""
        started = time.perf_counter()
        check_output_path(dst, overwrite)
        stream = src if isinstance(src, bs.Bitstream) else bs.load(src)
        audio = AudioFeed(stream.audio) if stream.audio is not None and self.audio else None
        sizes = stream.sizes or bs.section_sizes(bs.pack(stream))
        header = stream.header
        if stream.base is None:
            self.model_for(header)
        else:
            self.fuser_for(stream)
        if self.uses_interpolator(stream):
            self.synthesizer()
        fps = self.output_fps(header)
        writer = (output or VideoOutput()).writer(
            dst, fps, (header.width, header.height), overwrite
        )
        with writer:
            if audio is not None:
                writer.add_audio(audio.sample_rate, audio.channels)
            for frames in self.decode_stream(stream, progress):
                writer.write(frames)
                if audio is not None:
                    writer.write_audio(audio.until(writer.frames_written / float(fps)))
            if audio is not None:
                writer.write_audio(audio.until(None))
        return CodingStats(
            "decoded",
            self.output_frame_count(header),
            fps,
            sum(sizes.values()),
            sizes,
            time.perf_counter() - started,
            header.clipped,
        )


def encode(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    model: ModelSpec | None = None,
    crop: CropBox | None = None,
    overwrite: bool = False,
    **options,
) -> CodingStats:
    """Encode video file ``src`` to ``.fomc`` file ``dst``; ``options`` go to :class:`Encoder`."""
    return Encoder(model, **options).encode_file(src, dst, crop=crop, overwrite=overwrite)


def decode(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    model: ModelSpec | None = None,
    overwrite: bool = False,
    **options,
) -> CodingStats:
    """Decode ``.fomc`` file ``src`` to video file ``dst``; ``options`` go to :class:`Decoder`."""
    return Decoder(model, **options).decode_file(src, dst, overwrite=overwrite)
