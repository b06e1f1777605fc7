"""``fomc preview``: original | decoded side by side, and the frame strip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from fomcodec.cli.main import main
from fomcodec.eval.preview import frame_strip, side_by_side
from fomcodec.zoo import build_model, get_config, save_weights


def test_side_by_side_and_strip_layout() -> None:
    left = np.zeros((5, 8, 6, 3), np.uint8)
    right = np.full((5, 8, 6, 3), 7, np.uint8)
    joined = side_by_side(left, right, gap=2)
    assert joined.shape == (5, 8, 14, 3)
    assert (joined[:, :, :6] == 0).all() and (joined[:, :, 8:] == 7).all()
    assert (joined[:, :, 6:8] == 255).all()
    strip = frame_strip(left, right, 3, gap=2)
    assert strip.shape == (8 + 2 + 8, 3 * 6 + 2 * 2, 3)
    assert (strip[:8, :6] == 0).all() and (strip[10:, :6] == 7).all()
    with pytest.raises(ValueError):
        side_by_side(left, right[:4])


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_weights(
        build_model(get_config("tiny-256")), tmp_path_factory.mktemp("preview") / "tiny.safetensors"
    )


def test_cli_preview_writes_a_looping_gif_and_a_strip(
    make_clip, tmp_path: Path, weights: Path
) -> None:
    clip = make_clip(frames=6)
    gif, strip = tmp_path / "p.gif", tmp_path / "strip.png"
    result = CliRunner().invoke(
        main,
        [
            "preview",
            str(clip),
            "-o",
            str(gif),
            "--model",
            str(weights),
            "--strip",
            str(strip),
            "--strip-frames",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "PSNR" in result.stderr
    with Image.open(gif) as image:
        assert image.size == (2 * 256 + 4, 256)
        assert image.n_frames == 6 and image.info.get("loop") == 0
    with Image.open(strip) as image:
        assert image.size == (3 * 256 + 2 * 4, 2 * 256 + 4)


def test_cli_preview_fails_cleanly(
    not_a_video: Path, make_clip, tmp_path: Path, weights: Path
) -> None:
    clip = make_clip(frames=3)
    for args in (
        ["preview", str(not_a_video), "-o", str(tmp_path / "a.gif")],
        ["preview", str(clip), "-o", str(tmp_path / "a.txt"), "--model", str(weights)],
        ["preview", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "a.gif")],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("fomc: error:") and "Traceback" not in result.output
    assert not list(tmp_path.glob("a.*"))
