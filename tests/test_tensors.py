"""frames <-> images and tensor PSNR: the conversions every stage shares."""

from __future__ import annotations

import numpy as np
import torch

from fomcodec.tensors import PSNR_CAP, frames_to_images, image_psnr, images_to_frames


def test_frames_round_trip_exactly() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 8, 6, 3), dtype=np.uint8)
    images = frames_to_images(frames)
    assert images.shape == (3, 3, 8, 6) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(images_to_frames(images), frames)


def test_images_are_clipped_and_rounded() -> None:
    images = (
        torch.tensor([-0.5, 0.0, 0.5 / 255, 1.6 / 255, 2.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    )
    assert images_to_frames(images)[0, 0, :, 0].tolist() == [0, 0, 0, 2, 255]


def test_psnr_per_image_with_a_cap_for_identical_images() -> None:
    a = torch.zeros(2, 3, 4, 4)
    b = a.clone()
    b[1] += 0.1  # MSE 0.01 -> 20 dB
    torch.testing.assert_close(image_psnr(a, b), torch.tensor([PSNR_CAP, 20.0]))
