"""Model configuration: dataclasses read from YAML in the authors' ``model_params`` layout."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import yaml

from fomcodec.errors import ModelError


@dataclass
class KeypointDetectorConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    temperature: float = 0.1
    scale_factor: float = 0.25


@dataclass
class DenseMotionConfig:
    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25


@dataclass
class GeneratorConfig:
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6
    estimate_occlusion_map: bool = True
    skip_connections: bool = False  # warped source features of every scale into the decoder
    pixel_blend: bool = False  # output = m * warp(source) + (1 - m) * generated
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)


@dataclass
class ModelConfig:
    """Everything needed to build a FOMM model (defaults: the authors' vox-256)."""

    name: str = "vox-256"
    num_kp: int = 10
    num_channels: int = 3
    estimate_jacobian: bool = True
    image_size: int = 256
    align_corners: bool = False
    centred_grid: bool = False  # dense motion on the exact identity grid of grid_sample
    kp_detector: KeypointDetectorConfig = field(default_factory=KeypointDetectorConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    training: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str | None = None) -> ModelConfig:
        """Build from a parsed YAML document (``model_params`` + optional ``fomcodec`` keys)."""
        try:
            params = data["model_params"]
            common = params.get("common_params", {})
            kp = dict(params.get("kp_detector_params", {}))
            gen = dict(params.get("generator_params", {}))
            dense = gen.pop("dense_motion_params", None)
            if dense is None:
                raise ModelError("generator_params.dense_motion_params is required")
            extra = data.get("fomcodec", {}) or {}
            if extra.get("centred_grid") and extra.get("align_corners"):
                raise ModelError("centred_grid is the identity of align_corners: false only")
            return cls(
                name=name or extra.get("name") or "unnamed",
                num_kp=int(common.get("num_kp", 10)),
                num_channels=int(common.get("num_channels", 3)),
                estimate_jacobian=bool(common.get("estimate_jacobian", True)),
                image_size=int(extra.get("image_size", 256)),
                align_corners=bool(extra.get("align_corners", False)),
                centred_grid=bool(extra.get("centred_grid", False)),
                kp_detector=KeypointDetectorConfig(**kp),
                generator=GeneratorConfig(dense_motion=DenseMotionConfig(**dense), **gen),
                training=dict(data.get("train_params", {}) or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"invalid model config: {exc}") from exc

    @classmethod
    def from_yaml(cls, path: str | Path) -> ModelConfig:
        """Read a config file; the model's name defaults to the file's stem."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ModelError(f"cannot read model config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ModelError(f"model config {path} is not a mapping")
        extra = data.get("fomcodec") or {}
        return cls.from_dict(data, name=extra.get("name") or path.stem)

    def to_dict(self) -> dict[str, Any]:
        """The YAML document this config reads back from."""
        gen = dataclasses.asdict(self.generator)
        gen["dense_motion_params"] = gen.pop("dense_motion")
        return {
            "fomcodec": {
                "name": self.name,
                "image_size": self.image_size,
                "align_corners": self.align_corners,
                "centred_grid": self.centred_grid,
            },
            "model_params": {
                "common_params": {
                    "num_kp": self.num_kp,
                    "num_channels": self.num_channels,
                    "estimate_jacobian": self.estimate_jacobian,
                },
                "kp_detector_params": dataclasses.asdict(self.kp_detector),
                "generator_params": gen,
            },
            "train_params": dict(self.training),
        }


class SectionConfig:
    """Mixin for a flat dataclass config kept under one YAML key (:attr:`SECTION`), e.g.
    ``interpolator:`` or ``fuser:``; the keys may also sit at the top level."""

    SECTION: ClassVar[str]

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str | None = None) -> Self:
        kind = cls.SECTION
        if not isinstance(data, dict):
            raise ModelError(f"{kind} config must be a mapping")
        data = dict(data.get(kind, data))
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"unknown {kind} config keys: {', '.join(unknown)}")
        if name is not None and "name" not in data:
            data["name"] = name
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"invalid {kind} config: {exc}") from exc

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> Self:
        """Read a config file; the name defaults to the file's stem."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ModelError(f"cannot read {cls.SECTION} config {path}: {exc}") from exc
        return cls.from_dict(data, name=path.stem)

    def to_dict(self) -> dict[str, Any]:
        return {self.SECTION: dataclasses.asdict(self)}  # type: ignore[call-overload]

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
