"""Apply resolved assignments to a copy of the model, techniques in their fixed order
(rank reduction → pruning → quantization). The original is never modified."""

from __future__ import annotations

import copy
from typing import Iterator

from torch import nn

from studio.core.plan.resolve import Assignments
from studio.core.techniques import all_techniques
from studio.core.techniques.base import ApplyContext, LayerChange


def editable_copy(model: nn.Module, assignments: Assignments) -> nn.Module:
    """A copy that is safe to edit: containers on the path to each target and the targets
    themselves are copied; untouched layers are shared with the original to save memory.

    A target whose techniques only read it (`reads_only`, e.g. realized int4, which builds new
    tensors from the weight) is not copied at all: the copy's parent points at the original layer
    until the technique swaps it. A technique that edits layers far from its targets (structured
    pruning) and tied parameters, which must stay tied, take a full deep copy.
    """
    targets = {name for layers in assignments.values() for name in layers}
    techniques = all_techniques()
    reaches = any(techniques[key].changes_other_layers(c) for key, layers in assignments.items() for c in layers.values())
    copied = {name for name in targets if not _only_read(model, name, assignments)}
    if reaches or _touches_shared_parameters(model, copied):
        return copy.deepcopy(model)
    root = _shallow(model)
    for name in sorted(targets, key=lambda n: n not in copied):  # a copied layer's own copy wins
        parent = root
        parts = name.split(".")
        for part in parts[:-1]:
            child = parent._modules[part]
            if not getattr(child, "_studio_copied", False):
                child = _shallow(child)
                parent._modules[part] = child
            parent = child
        if name in copied:
            parent._modules[parts[-1]] = copy.deepcopy(parent._modules[parts[-1]])
    for module in root.modules():
        module.__dict__.pop("_studio_copied", None)
    return root


def _shallow(module: nn.Module) -> nn.Module:
    clone = copy.copy(module)
    for attr in ("_modules", "_parameters", "_buffers"):
        setattr(clone, attr, dict(getattr(module, attr)))
    clone._studio_copied = True
    return clone


def _only_read(model: nn.Module, name: str, assignments: Assignments) -> bool:
    techniques = all_techniques()
    module = model.get_submodule(name)
    for key, layers in assignments.items():
        if name in layers:
            reads_only = getattr(techniques[key], "reads_only", None)
            if not (callable(reads_only) and reads_only(module, layers[name])):
                return False
    return True


def _touches_shared_parameters(model: nn.Module, targets: set[str]) -> bool:
    owners: dict[int, int] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        for param in module.parameters(recurse=False):
            owners[id(param)] = owners.get(id(param), 0) + 1
    return any(owners.get(id(p), 0) > 1 for name in targets for p in model.get_submodule(name).parameters())


def apply_assignments_(model: nn.Module, assignments: Assignments, context: ApplyContext) -> Iterator[LayerChange]:
    """Run each technique on `model` in place. A layer replaced by an earlier technique
    (e.g. factorized into two Linears) is handed to later ones as its supported children."""
    techniques = all_techniques()
    for key, technique in techniques.items():
        layers = assignments.get(key)
        if not layers:
            continue
        targets = {}
        for name, config in layers.items():
            module = model.get_submodule(name)
            if technique.supports(module):
                targets[name] = config
            else:
                for child_name, child in module.named_modules(prefix=name):
                    if child_name != name and technique.supports(child):
                        targets[child_name] = config
        context.check_cancel()
        yield from technique.apply_(model, targets, context)
