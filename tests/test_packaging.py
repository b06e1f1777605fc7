"""A wheel is a whole install: its registry finds the shipped models inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if build.returncode != 0:
        pytest.skip(f"pip wheel failed here: {build.stderr.strip()[-300:]}")
    wheel = next(out.glob("fomcodec-*.whl"))
    target = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def test_wheel_carries_the_shipped_models(unpacked_wheel: Path) -> None:
    files = unpacked_wheel / "fomcodec" / "model_files"
    shipped = {
        p.relative_to(REPO / "models").as_posix()
        for p in (REPO / "models").rglob("*")
        if p.suffix in (".yaml", ".safetensors", ".json")
    }
    assert shipped and all((files / name).is_file() for name in shipped)


def test_installed_package_finds_its_models_from_any_folder(
    unpacked_wheel: Path, tmp_path: Path
) -> None:
    script = (
        "import fomcodec, fomcodec.zoo as zoo\n"
        "from fomcodec.codec.frame_interpolation import DEFAULT_INTERPOLATOR\n"
        "model = fomcodec.load_model()\n"
        "interpolator = zoo.load_interpolator(DEFAULT_INTERPOLATOR)\n"
        "print(fomcodec.__file__, zoo.shipped_models_dir(), model.model_name,\n"
        "      zoo.DEFAULT_MODEL, interpolator.model_name, interpolator.weights_path)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(unpacked_wheel)}
    env.pop("FOMC_MODELS_DIR", None)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    module, folder, model, default, interpolator, weights = result.stdout.split()
    assert Path(module).is_relative_to(unpacked_wheel)
    assert Path(folder) == unpacked_wheel / "fomcodec" / "model_files"
    assert model == default and interpolator == "ffi-flow"
    assert Path(weights).is_relative_to(Path(folder) / "interpolators")
