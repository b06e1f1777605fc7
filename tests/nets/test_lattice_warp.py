"""The lattice warp: a motion model without weights (identity, estimate, config, registry)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import talking_head_frames

from fomcodec.errors import ModelError
from fomcodec.nets.keypoint_detector import Keypoints
from fomcodec.nets.lattice_warp import LatticeWarp, LatticeWarpConfig, config_hash
from fomcodec.zoo import get_config, load_model


def _images(count: int = 2) -> torch.Tensor:
    return torch.from_numpy(talking_head_frames(count, (256, 256))).permute(0, 3, 1, 2) / 255


@pytest.fixture(scope="module")
def lattice() -> LatticeWarp:
    return LatticeWarp(LatticeWarpConfig())


def test_zero_motion_reproduces_the_source_exactly(lattice) -> None:
    source = _images(1)
    out = lattice.warp(source, Keypoints(torch.zeros(3, 16, 2)))
    assert out.shape == (3, 3, 256, 256)
    torch.testing.assert_close(out, source.expand(3, -1, -1, -1), rtol=0, atol=0)


def test_a_uniform_lattice_shifts_the_whole_frame(lattice) -> None:
    source = _images(1)
    # x offset of 8 pixels (in units of half the frame): the frame shows the source 8 px to
    # the right, so column c of the output is column c + 8 of the source
    motion = Keypoints(torch.tensor([8 / 128, 0.0]).expand(1, 16, 2).clone())
    field = lattice.displacement_field(motion)
    torch.testing.assert_close(field, torch.tensor([8 / 128, 0.0]).expand_as(field))
    out = lattice.warp(source, motion)
    torch.testing.assert_close(out[..., :, :200], source[..., :, 8:208], atol=1e-5, rtol=0)


def test_the_estimate_recovers_a_shift_and_warps_closer_than_the_source(lattice) -> None:
    source = _images(1)
    frame = torch.roll(source, shifts=(0, -5), dims=(2, 3))  # content moved 5 px to the left
    motion = lattice.estimate(frame, source)
    assert motion.value.shape == (1, 16, 2) and motion.jacobian is None
    centre = motion.value[0].view(4, 4, 2)[1:3, 1:3]  # away from the rolled-over border
    np.testing.assert_allclose(centre[..., 0] * 128, 5.0, atol=0.75)
    np.testing.assert_allclose(centre[..., 1] * 128, 0.0, atol=0.75)
    inner = (slice(None), slice(None), slice(32, 224), slice(32, 224))
    warped_error = (lattice.warp(source, motion) - frame)[inner].abs().mean()
    assert warped_error < (source - frame)[inner].abs().mean() / 3


def test_config_checks_and_identity() -> None:
    with pytest.raises(ModelError, match="lattice_size"):
        LatticeWarpConfig(lattice_size=0)
    with pytest.raises(ModelError, match="upsampling"):
        LatticeWarpConfig(upsampling="nearest")
    with pytest.raises(ModelError, match="unknown lattice_warp config keys"):
        LatticeWarpConfig.from_dict({"lattice_warp": {"grid": 4}})
    base = LatticeWarpConfig()
    # what the decoder does identifies the model; the encoder's own choices do not
    assert config_hash(base) == config_hash(base.replace(notes="x", flow_preset="fast"))
    assert config_hash(base) != config_hash(base.replace(lattice_size=5))
    assert config_hash(base) != config_hash(base.replace(upsampling="bilinear"))


def test_the_registry_loads_the_lattice_by_name_and_by_path(tmp_path) -> None:
    model = load_model("fomc-lattice")
    assert isinstance(model, LatticeWarp)
    assert model.model_name == "fomc-lattice" and model.config.num_kp == 16
    assert isinstance(get_config("fomc-lattice"), LatticeWarpConfig)
    path = tmp_path / "five.yaml"
    model.config.replace(lattice_size=5).to_yaml(path)
    five = load_model(path)
    assert five.config.num_kp == 25
    assert five.weights_hash != model.weights_hash
