"""The one object every model source yields, whatever file or package it came from."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from studio.core.model.input_spec import InputSpec

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to inspect: eval-mode module, where it came from, how to call it.

    `eager` is False for TorchScript, which can be inspected and exported but not
    restructured by techniques that replace modules.
    """

    module: nn.Module
    name: str
    source: str
    kind: str
    input_spec: InputSpec
    eager: bool = True
    notes: tuple[str, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)

    def with_input_spec(self, spec: InputSpec) -> LoadedModel:
        return replace(self, input_spec=spec)

    def example_inputs(self, seed: int = 0) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return self.input_spec.make_inputs(seed)
