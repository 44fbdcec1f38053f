"""The technique registry and the contracts every technique fulfils.

A technique owns: its config dataclass (the recipe's data), which layer types it supports,
per-layer validation, a what-if projection computed without running anything, and
`apply_`, which changes a copy of the model in place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator

from studio.core.base.errors import StudioError

if TYPE_CHECKING:
    from torch import nn

    from studio.core.base.cancel import CancelToken


@dataclass(frozen=True)
class TechniqueConfig:
    """Base of per-technique configs: strict dict round-trip and value checks."""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TechniqueConfig:
        data = dict(data or {})
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise StudioError(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise StudioError(str(exc)) from exc

    def problems(self) -> list[str]:
        """Value errors independent of any layer (e.g. a ratio outside (0, 1))."""
        return []

    def summary(self) -> str:
        """Short text for the tree's action column, e.g. 'svd r=32'."""
        return ", ".join(f"{k}={v}" for k, v in self.to_dict().items())


@dataclass
class Estimate:
    """Projected figures of one layer; techniques transform it in composition order."""

    params: int
    bytes: int
    flops: int
    nonzero: int


@dataclass(frozen=True)
class LayerChange:
    """What applying a technique did to one layer (or why it skipped it)."""

    name: str
    technique: str
    detail: str
    params_before: int
    params_after: int
    skipped: bool = False


@dataclass
class ApplyContext:
    """What techniques may need besides the model: example inputs, calibration data, cancel."""

    example_inputs: tuple[tuple[Any, ...], dict[str, Any]]
    calibration: Callable[[], Iterator[tuple[tuple[Any, ...], dict[str, Any]]]] | None = None
    cancel: CancelToken | None = None
    warnings: list[str] = field(default_factory=list)

    def check_cancel(self) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()

    def calibration_batches(self) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
        if self.calibration is None:
            yield self.example_inputs
        else:
            yield from self.calibration()


class Technique:
    """Subclass, set the class attributes and decorate with `@register`."""

    name: ClassVar[str]          # the recipe key: prune / quantize / lowrank
    config_type: ClassVar[type[TechniqueConfig]]
    order: ClassVar[int]         # composition order, lower first
    label: ClassVar[str]         # menu text
    supported_types: ClassVar[str]  # for messages, e.g. "Linear, Conv2d"

    def supports(self, module: nn.Module) -> bool:
        raise NotImplementedError

    def check(self, name: str, module: nn.Module, config: TechniqueConfig) -> list[str]:
        """Problems applying `config` to this layer would have; empty when fine."""
        return []

    def check_model(self, model: nn.Module, targets: dict[str, TechniqueConfig],
                    example_inputs: tuple[tuple[Any, ...], dict[str, Any]]) -> list[str]:
        """Whole-model problems found before anything runs (never modifies `model`)."""
        return []

    def project(self, module: nn.Module, config: TechniqueConfig, estimate: Estimate) -> Estimate:
        raise NotImplementedError

    def apply_(self, model: nn.Module, targets: dict[str, TechniqueConfig],
               context: ApplyContext) -> Iterator[LayerChange]:
        """Change `model` (a copy the caller owns) in place, one LayerChange per target."""
        raise NotImplementedError


TECHNIQUES: dict[str, Technique] = {}


def register(cls: type[Technique]) -> type[Technique]:
    TECHNIQUES[cls.name] = cls()
    return cls


def replace_submodule_(model: nn.Module, name: str, new: nn.Module) -> None:
    """Swap the module at dotted `name` for `new` (the root cannot be replaced)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
