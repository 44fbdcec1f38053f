"""The technique registry and the contracts every technique fulfils.

A technique owns: its config dataclass (the recipe's data, with each field's dialog choices,
label and help in its metadata), which layer types it supports, per-layer validation, a what-if
projection computed without running anything, `apply_`, which changes a copy of the model in
place, and its special cases as hooks that generic code (plan resolution, apply, projection,
fine-tuning) asks instead of naming a technique: conflicts with another technique on one
layer, edits that reach other layers, the layers those shrink, masks kept while fine-tuning.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator

from studio.core.base.errors import StudioError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from studio.core.base.cancel import CancelToken


def option(default: Any, *, choices: Any = None, label: str | None = None, help: str | None = None,
           start: Any = None, range: tuple[float, float] | None = None) -> Any:
    """A config field with what a dialog needs in its metadata: `choices` (a tuple, or a function
    returning one, for values read from a registry), `label`, `help` (tooltip), `start` (the
    value an unset optional field takes when ticked) and `range` (spin box bounds)."""
    metadata = {key: value for key, value in (("choices", choices), ("label", label), ("help", help),
                                              ("start", start), ("range", range)) if value is not None}
    return field(default=default, metadata=metadata)


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
    # When an earlier technique replaced the layer by several (factors): (out, fan-in, bias) of
    # each weight-bearing part, so later techniques project what they will really meet.
    parts: tuple[tuple[int, int, int], ...] = ()


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
    order: ClassVar[int]         # composition order (the order of application), lower first
    label: ClassVar[str]         # menu text
    supported_types: ClassVar[str]  # for messages, e.g. "Linear, Conv2d"
    noun: ClassVar[str] = ""     # for messages naming the technique, e.g. "rank reduction"
    restructures: ClassVar[bool] = False  # replaces a layer by differently shaped modules (factors)
    aliases: ClassVar[tuple[str, ...]] = ()  # other names users type for it (sweeps, CLI), e.g. "quant"
    sweep_defaults: ClassVar[tuple[str, ...]] = ()  # sensitivity settings swept when none are chosen
    simulated: ClassVar[bool] = False  # PyTorch only simulates it (slower there); a runtime realizes it on export

    def supports(self, module: nn.Module) -> bool:
        raise NotImplementedError

    def check(self, name: str, module: nn.Module, config: TechniqueConfig) -> list[str]:
        """Problems applying `config` to this layer would have; empty when fine."""
        return []

    def check_model(self, model: nn.Module, targets: dict[str, TechniqueConfig],
                    example_inputs: tuple[tuple[Any, ...], dict[str, Any]]) -> list[str]:
        """Whole-model problems found before anything runs (never modifies `model`). A problem of
        one target is worded 'layer NAME: KEY: reason', so a pattern rule can skip that layer."""
        return []

    def check_model_cached(self, model: nn.Module, targets: dict[str, TechniqueConfig],
                           example_inputs: tuple[tuple[Any, ...], dict[str, Any]]) -> list[str]:
        """check_model for the what-if projection, which runs on every plan edit on a model
        nothing changes: it may reuse what it traced before. The same problems as check_model."""
        return self.check_model(model, targets, example_inputs)

    def project(self, module: nn.Module, config: TechniqueConfig, estimate: Estimate) -> Estimate:
        raise NotImplementedError

    # --- hooks for the special cases generic code must know about -----------------------
    def conflicts(self, config: TechniqueConfig, other: Technique, other_config: TechniqueConfig) -> str | None:
        """Why `config` cannot share one layer with `other`'s config (None: they compose)."""
        return None

    def changes_other_layers(self, config: TechniqueConfig) -> bool:
        """Does applying `config` also edit layers it does not target (coupled channels)? Then
        apply needs a full copy of the model and a layer's effect needs whole-model forwards."""
        return False

    def coupled_effects(self, model: nn.Module, example_inputs: tuple[tuple[Any, ...], dict[str, Any]],
                        targets: dict[str, TechniqueConfig]) -> dict[str, float]:
        """{layer: share of its own parameters kept} for layers that applying `targets` shrinks
        besides the targets' own estimates; read without changing `model`."""
        return {}

    def coupled_flops(self, model: nn.Module, example_inputs: tuple[tuple[Any, ...], dict[str, Any]],
                      targets: dict[str, TechniqueConfig]) -> dict[str, int]:
        """{target layer: FLOPs applying `targets` removes inside it that no parameter-holding
        layer accounts for (e.g. the attention scores of removed heads; negative: work added, e.g.
        ALBERT's projection after a table)}; read without changing `model`."""
        return {}

    def sweep_setting(self, raw: str, text: str) -> tuple[str, dict[str, Any]]:
        """(label, config body) of a sensitivity setting the user typed (`raw`: lower-case, single
        spaces; `text`: as typed, for messages), e.g. 'struct 30%'; StudioError when unreadable."""
        raise StudioError(f"{self.name} has no sweep settings.")

    def layer_body(self, body: dict[str, Any], module: nn.Module) -> dict[str, Any]:
        """A config body completed for one layer, as a plan for that layer would pick it."""
        return body

    def fine_tune_masks(self, model: nn.Module, change: LayerChange) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(parameter, mask) pairs fine-tuning multiplies in after every optimizer step, so what
        this change made zero stays zero."""
        return []

    def apply_(self, model: nn.Module, targets: dict[str, TechniqueConfig],
               context: ApplyContext) -> Iterator[LayerChange]:
        """Change `model` (a copy the caller owns) in place, one LayerChange per target."""
        raise NotImplementedError


TECHNIQUES: dict[str, Technique] = {}


def register(cls: type[Technique]) -> type[Technique]:
    TECHNIQUES[cls.name] = cls()
    return cls


_NUMBER = r"(\d+(?:\.\d+)?)\s*(%?)"


def parse_fraction(text: str, what: str) -> float:
    """'0.5' or '50%' → 0.5; a clear StudioError for anything else or outside (0, 1]."""
    match = re.fullmatch(_NUMBER, text.strip())
    if not match:
        raise StudioError(f"{what} {text!r} is not a number or percentage (e.g. 0.5 or 50%).")
    value = float(match.group(1)) / (100 if match.group(2) else 1)
    if not 0 < value < 1 + 1e-9:
        raise StudioError(f"{what} {text!r} must be a fraction between 0 and 1 (or a percentage, e.g. 50%).")
    return round(value, 6)


def percent(value: float) -> str:
    return f"{value * 100:g}%"


def replace_submodule_(model: nn.Module, name: str, new: nn.Module) -> None:
    """Swap the module at dotted `name` for `new` (the root cannot be replaced)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
