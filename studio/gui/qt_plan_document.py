"""The open compression plan with undo/redo.

Plans are immutable, so each command just remembers the plan before and after its edit;
undo swaps the old one back. Every edit goes through here so the tree, the budget and
the recipe file all follow one `planChanged` signal.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QKeySequence, QUndoCommand, QUndoStack

from studio.core.plan import CompressionPlan
from studio.core.plan.editing import add_pattern_rule, clear_layers, mark_layers, remove_rule
from studio.core.techniques import all_techniques
from studio.core.techniques.base import Technique, TechniqueConfig

if TYPE_CHECKING:
    from torch import nn

    from studio.core.model.model_tree import ModelTree
    from studio.core.plan.projection import PlanProjection


def technique_verb(technique: Technique) -> str:
    """'Prune…' → 'Prune': menu labels double as verbs in titles and undo texts."""
    return technique.label.rstrip("…").rstrip(".").strip() or technique.name


def layers_text(layers: Sequence[str]) -> str:
    """One layer is named, several are counted: 'features.0.0' / '3 layers'."""
    return layers[0] if len(layers) == 1 else f"{len(layers)} layers"


def _verb(key: str) -> str:
    technique = all_techniques().get(key)
    return technique_verb(technique) if technique else key


class _PlanCommand(QUndoCommand):
    """Swaps between two immutable plans; no diffing, no partial state."""

    def __init__(self, document: PlanDocument, text: str, before: CompressionPlan, after: CompressionPlan) -> None:
        super().__init__(text)
        self._document = document
        self.before = before
        self.after = after

    def redo(self) -> None:
        self._document._show(self.after)

    def undo(self) -> None:
        self._document._show(self.before)


class PlanDocument(QObject):
    """Current plan + `undo_stack`; edits return False when they would change nothing."""

    planChanged = Signal(object)     # the new CompressionPlan, after every do/undo/redo
    dirtyChanged = Signal(bool)      # True once the plan differs from the saved/loaded file
    pathChanged = Signal(object)     # Path | None of the recipe file

    def __init__(self, plan: CompressionPlan | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._plan = plan if plan is not None else CompressionPlan()
        self._path: Path | None = None
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)

    # --- state ----------------------------------------------------------------------
    @property
    def plan(self) -> CompressionPlan:
        return self._plan

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def dirty(self) -> bool:
        return not self.undo_stack.isClean()

    def _on_clean_changed(self, clean: bool) -> None:
        self.dirtyChanged.emit(not clean)

    def _show(self, plan: CompressionPlan) -> None:
        self._plan = plan
        self.planChanged.emit(plan)

    def _push(self, text: str, after: CompressionPlan) -> bool:
        if after == self._plan:
            return False
        self.undo_stack.push(_PlanCommand(self, text, self._plan, after))
        return True

    # --- edits ----------------------------------------------------------------------
    def mark(self, layer_names: Iterable[str], key: str, config: TechniqueConfig | None) -> bool:
        """Exact-name rules for the layers; `config=None` excludes them from `key`."""
        names = list(layer_names)
        if not names:
            return False
        what = layers_text(names)
        text = f"{_verb(key)} {what}" if config is not None else f"Exclude {what} from {key}"
        return self._push(text, mark_layers(self._plan, names, key, config))

    def clear(self, layer_names: Iterable[str], key: str | None = None) -> bool:
        """Drop the layers' own settings; a pattern rule still reaching them gets a null."""
        names = list(layer_names)
        if not names:
            return False
        text = f"Clear {layers_text(names)}" if key is None else f"Clear {key} from {layers_text(names)}"
        return self._push(text, clear_layers(self._plan, names, key))

    def add_rule(self, pattern: str, key: str, config: TechniqueConfig | None) -> bool:
        text = f"{_verb(key)} {pattern}" if config is not None else f"Exclude {pattern} from {key}"
        return self._push(text, add_pattern_rule(self._plan, pattern, key, config))

    def remove_rule(self, index: int) -> bool:
        if not 0 <= index < len(self._plan.rules):
            return False
        return self._push(f"Remove rule {self._plan.rules[index].layers}", remove_rule(self._plan, index))

    def set_plan(self, plan: CompressionPlan, text: str = "Open recipe") -> bool:
        return self._push(text, plan)

    def reset(self, plan: CompressionPlan | None = None) -> None:
        """A new model starts a new history: nothing to undo, nothing unsaved."""
        self.undo_stack.clear()
        self._set_path(None)
        self._show(plan if plan is not None else CompressionPlan())

    # --- files ----------------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path:
        """Write the recipe (YAML, or JSON for *.json) and mark this state as saved."""
        target = Path(path) if path is not None else self._path
        if target is None:
            raise ValueError("No recipe file chosen yet; pass a path.")
        self._plan.save(target)
        self._set_path(target)
        self.undo_stack.setClean()
        return target

    def load(self, path: str | Path) -> CompressionPlan:
        """Read a recipe as one undoable step; raises StudioError/PlanError unchanged."""
        path = Path(path)
        plan = CompressionPlan.load(path)
        self.set_plan(plan, f"Open {path.name}")
        self._set_path(path)
        self.undo_stack.setClean()
        return plan

    def _set_path(self, path: Path | None) -> None:
        if path != self._path:
            self._path = path
            self.pathChanged.emit(path)

    # --- helpers --------------------------------------------------------------------
    def projection(self, model: nn.Module, tree: ModelTree) -> PlanProjection:
        from studio.core.plan.projection import project_plan

        return project_plan(self._plan, model, tree)

    def create_actions(self, parent: QObject) -> tuple[QAction, QAction]:
        """Undo/Redo actions whose texts follow the stack ('Undo Prune 2 layers')."""
        undo = self.undo_stack.createUndoAction(parent, "Undo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        undo.setObjectName("undoAction")
        redo = self.undo_stack.createRedoAction(parent, "Redo")
        redo.setShortcut(QKeySequence.StandardKey.Redo)
        redo.setObjectName("redoAction")
        return undo, redo
