"""Pick an input spec for models that do not declare one, from their first weighted layer."""

from __future__ import annotations

from torch import nn

from studio.core.base.errors import StudioError
from studio.core.model.input_spec import InputSpec

DEFAULT_SPEC = "1x3x224x224 float32"


def declared_input_spec(*holders: object) -> InputSpec | None:
    """An `example_input_spec`/`INPUT_SPEC` (str or InputSpec) set by the model's author."""
    for holder in holders:
        for attr in ("example_input_spec", "INPUT_SPEC"):
            value = getattr(holder, attr, None)
            if isinstance(value, InputSpec):
                return value
            if isinstance(value, str):
                try:
                    return InputSpec.parse(value)
                except StudioError as exc:
                    raise StudioError(f"The model declares {attr}={value!r}, which is invalid: {exc}") from exc
    return None


def guess_input_spec(module: nn.Module) -> InputSpec:
    """Shape the first Conv/Linear/Embedding would accept; the user can always override it."""
    for mod in module.modules():
        if isinstance(mod, nn.Embedding):
            return InputSpec.parse(f"1x128 int64 [0,{mod.num_embeddings})")
        if isinstance(mod, nn.Conv1d):
            return InputSpec.parse(f"1x{mod.in_channels}x128 float32")
        if isinstance(mod, nn.Conv2d):
            return InputSpec.parse(f"1x{mod.in_channels}x224x224 float32")
        if isinstance(mod, nn.Conv3d):
            return InputSpec.parse(f"1x{mod.in_channels}x16x112x112 float32")
        if isinstance(mod, nn.Linear):
            return InputSpec.parse(f"1x{mod.in_features} float32")
    return InputSpec.parse(DEFAULT_SPEC)
