"""One forward pass that only feeds hooks: the FLOPs projections of pruning, head pruning and the
ALBERT factorization read shapes from it. Shared so each restores the model the same way."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def hooked_forward(model: nn.Module, example_inputs: tuple[tuple[Any, ...], dict[str, Any]],
                   handles: list[Any]) -> bool:
    """Run `model` once on `example_inputs` (eval mode, no grad), then remove `handles` and restore
    every module's training flag. False when the forward failed: the caller's projection then does
    without what the hooks would have recorded rather than failing."""
    training = {m: m.training for m in model.modules()}
    try:
        model.eval()
        args, kwargs = example_inputs
        with torch.no_grad():
            model(*args, **kwargs)
        return True
    except Exception:
        return False
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in training.items():
            module.train(flag)
