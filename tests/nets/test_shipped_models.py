"""The shipped weights on a face none of them saw in training (a public-domain portrait moved
rigidly): each must clearly beat the trivial baseline it replaces."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

import fomcodec
from fomcodec.codec.frame_interpolation import MiddleFrameSynthesizer
from fomcodec.eval.metrics import psnr_rgb
from fomcodec.media.sample_clip import FPS, SIZE, public_domain_clip


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return public_domain_clip(24)


def test_sample_clip_is_a_moving_256_square(clip: np.ndarray) -> None:
    assert clip.shape == (24, SIZE, SIZE, 3) and clip.dtype == np.uint8
    steps = np.abs(np.diff(clip.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert (steps > 2).all()  # every frame moves
    np.testing.assert_array_equal(public_domain_clip(24), clip)  # deterministic


@pytest.mark.parametrize("model", [None, "fomc-warp"])
def test_default_and_fomm_models_beat_repeating_the_first_frame(clip: np.ndarray, model) -> None:
    encoder = fomcodec.Encoder(model, device="cpu")
    stream = encoder.encode_frames(iter(clip), Fraction(FPS))
    decoded = np.concatenate(
        list(fomcodec.Decoder(encoder.model, device="cpu").decode_stream(stream))
    )
    repeated = np.repeat(clip[:1], len(clip) - 1, axis=0)
    ours = psnr_rgb(clip[1:], decoded[1:]).mean()
    assert ours > psnr_rgb(clip[1:], repeated).mean() + 1.0


def test_default_interpolator_beats_averaging_the_two_frames(clip: np.ndarray) -> None:
    first, middle, second = clip[0:-2:2], clip[1:-1:2], clip[2::2]

    def tensor(frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255

    synthesised = MiddleFrameSynthesizer()(tensor(first), tensor(second))
    ours = (synthesised * 255).round().byte().permute(0, 2, 3, 1).numpy()
    average = ((first.astype(np.uint16) + second + 1) // 2).astype(np.uint8)
    assert psnr_rgb(middle, ours).mean() > psnr_rgb(middle, average).mean() + 1.0


@pytest.mark.parametrize("fuser", ["fuse-fast", "fuse-small"])
def test_shipped_fusers_beat_the_detail_fuser(clip: np.ndarray, fuser: str) -> None:
    from fomcodec.codec.base_layer import DETAIL_FUSER, BaseLayerSettings

    psnr = {}
    for name in (DETAIL_FUSER, fuser):
        settings = BaseLayerSettings(size=96, crf=54, fps_divisor=2, fuser=name)
        encoder = fomcodec.Encoder(device="cpu", base_layer=settings, audio_bit_rate=None)
        stream = encoder.encode_frames(iter(clip), Fraction(FPS))
        decoded = np.concatenate(list(fomcodec.Decoder(device="cpu").decode_stream(stream)))
        psnr[name] = psnr_rgb(clip, decoded).mean()
    assert psnr[fuser] > psnr[DETAIL_FUSER] + 0.2, psnr
