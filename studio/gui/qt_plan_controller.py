"""Marking layers from the tree: context menu, in-place editing of the plan column, rules by
pattern, undo/redo, recipes on disk and the live what-if budget. Edits change the plan and
nothing else (a plan is data); techniques come from the registry, never from a list here."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QModelIndex, QObject, QPoint, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMenu, QWidget

from studio.core.base.errors import StudioError
from studio.core.base.units import clip, format_bytes, format_count, format_flops
from studio.gui.qt_file_dialogs import open_file, save_file
from studio.gui.qt_layer_tree_model import COL_PLAN
from studio.gui.qt_plan_autosave import RESTORED, PlanAutosave
from studio.gui.qt_plan_document import PlanDocument

if TYPE_CHECKING:
    from studio.gui.qt_layer_view import LayerTreePanel
    from studio.gui.qt_open_controller import CurrentModel
    from studio.gui.qt_worker import JobRunner

RECIPE_FILTER = "Recipes (*.yaml *.yml *.json)"


def _change(before: float, after: float) -> str:
    return f"\u00a0({(after - before) / before:+.0%})" if before else ""


def _nb(text: str) -> str:
    """A figure never wraps between its number and its unit ("18.7 M")."""
    return text.replace(" ", "\u00a0")


def _first_line(title: str, messages: tuple[str, ...], colour: str, width: int) -> str:
    """The budget strip's line for `messages`: the first one, clipped, and how many more (the tooltip has them all)."""
    if not messages:
        return ""
    more = f" (+{len(messages) - 1} more, hover)" if len(messages) > 1 else ""
    return (f"<br><span style='color:{colour}'><b>{title}:</b> {html.escape(clip(messages[0], width))}"
            f"{more}</span>")


class PlanController(QObject):
    """Owns the PlanDocument of the current model; edits it from the layer tree."""

    projectionChanged = Signal(object)  # PlanProjection | None

    def __init__(self, current: CurrentModel, layers: LayerTreePanel, runner: JobRunner,
                 status: Callable[..., None], errors: Callable[[str, str], None], parent: QWidget) -> None:
        super().__init__(parent)
        self.current, self.layers, self.runner = current, layers, runner
        self._status, self._errors, self._parent = status, errors, parent
        self._untraced = False  # the last projection ran while a job used the module: redo when idle
        runner.busyChanged.connect(lambda busy: None if busy or not self._untraced else self.refresh())
        self.document = PlanDocument(parent=self)
        self.autosave = PlanAutosave(self.document, self)
        self.projection: Any = None
        self.budget = QLabel()
        self.budget.setObjectName("planBudget")
        self.budget.setWordWrap(True)
        self.budget.setText("No plan yet: select layers and right-click to prune, quantize or factorize them.")
        self.document.planChanged.connect(self.refresh)
        view = layers.view
        view.customContextMenuRequested.connect(self.show_context_menu)
        view.doubleClicked.connect(self._on_double_click)
        self.undo_action, self.redo_action = self.document.create_actions(self)
        self.open_recipe_action = self._action("Open recipe…", self.open_recipe, "Ctrl+Shift+O")
        self.save_recipe_action = self._action("Save recipe…", self.save_recipe, QKeySequence.StandardKey.Save)
        self.add_rule_action = self._action("Add rule by pattern…", self.add_rule, "Ctrl+Shift+R")
        self.clear_plan_action = self._action("Clear plan", self.clear_plan)
        self._update_enabled()

    def _action(self, text: str, slot: Any, shortcut: Any = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _c=False: slot())
        return action

    def actions(self) -> list[QAction]:
        return [self.undo_action, self.redo_action, self.add_rule_action, self.clear_plan_action,
                self.open_recipe_action, self.save_recipe_action]

    # --- model lifecycle -------------------------------------------------------------
    def model_changed(self) -> None:
        """A new model starts a new plan (and a new undo history), or the plan left unsaved
        for it last time."""
        self.autosave.key = None  # the reset below must not discard the previous model's autosave
        self.document.reset()
        opened, request = self.current.opened, self.current.request
        key = None
        if opened is not None and request is not None and opened.loaded.kind != "compressed":
            key = f"{request.source}|{request.weights or ''}"
        if self.autosave.attach(key):
            QTimer.singleShot(0, lambda: self._status(RESTORED, 15000))

    def _opened(self) -> Any:
        return self.current.opened

    def _update_enabled(self) -> None:
        """Plan actions need a model; Clear needs a plan."""
        has_model = self._opened() is not None
        for action in (self.add_rule_action, self.save_recipe_action, self.open_recipe_action):
            action.setEnabled(has_model)
        self.clear_plan_action.setEnabled(has_model and bool(self.document.plan.rules))

    def refresh(self, *_: Any) -> None:
        """Recompute the what-if budget from the plan; invalid rules are listed, not fatal."""
        opened = self._opened()
        self._update_enabled()
        if opened is None or not opened.loaded.eager:
            self.projection = None
            self.layers.model.set_projection({})
            self.projectionChanged.emit(None)
            return
        from studio.core.plan.projection import project_plan

        # Coupled layers come from tracing the model with hooks; never while a job runs on the
        # same module in the worker (the window refreshes again when the job ends).
        idle = not self.runner.busy
        self._untraced = not idle
        projection = project_plan(self.document.plan, opened.loaded.module, opened.tree,
                                  opened.loaded.example_inputs() if idle else None)
        self.projection = projection
        self.layers.model.set_projection(projection.layers)
        self._show_budget(projection)
        self.projectionChanged.emit(projection)

    def _show_budget(self, p: Any) -> None:
        if not self.document.plan.rules:
            self.budget.setText("No plan yet: select layers and right-click to prune, quantize or factorize them.")
            self.budget.setToolTip("")
            return
        b, a = p.before, p.after
        coupled = sum(1 for layer in p.layers.values() if layer.coupled)
        layers = f"{len(p.layers) - coupled} layer(s)" + (f" (+{coupled} coupled)" if coupled else "")
        text = (f"<b>Plan</b> · {len(self.document.plan.rules)} rule(s), {layers} · projected: "
                f"params\u00a0{_nb(format_count(b.params))}\u00a0→\u00a0<b>{_nb(format_count(a.params))}</b>"
                f"{_change(b.params, a.params)} · "
                f"size\u00a0{_nb(format_bytes(b.bytes))}\u00a0→\u00a0<b>{_nb(format_bytes(a.bytes))}</b>"
                f"{_change(b.bytes, a.bytes)} · "
                f"FLOPs\u00a0{_nb(format_flops(b.flops))}\u00a0→\u00a0<b>{_nb(format_flops(a.flops))}</b>"
                f"{_change(b.flops, a.flops)}")
        if a.nonzero < b.nonzero:
            text += f" · non\u2011zero\u00a0{_nb(format_count(a.nonzero))}"
        text += _first_line("Problem", p.problems, "#c5221f", 140)  # the reason itself, not only a count
        # a pattern's layers its technique cannot take: skipped, the plan still runs
        text += _first_line("Skipped", p.warnings, "#9a6700", 160)
        self.budget.setText(text)
        self.budget.setToolTip("\n".join([*p.problems, *p.warnings]))

    # --- marking -----------------------------------------------------------------------
    def selected_names(self) -> list[str]:
        return [node.name for node in self.layers.selected_nodes() if node.name]

    def show_context_menu(self, pos: QPoint) -> None:
        if self._opened() is None:
            return
        menu = self.build_menu()
        menu.popup(self.layers.view.viewport().mapToGlobal(pos))

    def build_menu(self) -> QMenu:
        """The tree's context menu; one entry per registered technique."""
        from studio.core.techniques import all_techniques

        names = self.selected_names()
        menu = QMenu(self._parent)
        menu.setObjectName("layerMenu")
        for key, technique in all_techniques().items():
            action = menu.addAction(technique.label, lambda k=key: self.mark_selected(k))
            action.setObjectName(f"mark_{key}")
            action.setEnabled(bool(names))
        menu.addSeparator()
        clear = menu.addAction("Clear", lambda: self.document.clear(self.selected_names()))
        clear.setObjectName("clearMarks")
        clear.setEnabled(bool(names))
        menu.addAction(self.add_rule_action)
        menu.addSeparator()
        menu.addActions([self.undo_action, self.redo_action])
        return menu

    def mark_selected(self, key: str, config: Any = None) -> None:
        """Open the technique's dialog for the selected layers; OK edits the plan."""
        from studio.gui.qt_technique_dialogs import TechniqueDialog

        names = self.selected_names()
        if not names:
            return
        dialog = TechniqueDialog(key, names, config, self._parent)
        dialog.accepted.connect(lambda: self.document.mark(names, key, dialog.config()))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        self.last_dialog = dialog

    def _on_double_click(self, index: QModelIndex) -> None:
        """The plan column is edited in place: double-click opens that layer's settings."""
        if index.column() != COL_PLAN or self._opened() is None:
            return
        node = self.layers.proxy.mapToSource(index).internalPointer()
        from studio.core.plan.resolve import resolve_with_problems

        assignments, _ = resolve_with_problems(self.document.plan, self._opened().loaded.module)
        for key, layers in assignments.items():
            if node.name in layers:
                selection = self.layers.view.selectionModel()
                selection.select(index, selection.SelectionFlag.ClearAndSelect | selection.SelectionFlag.Rows)
                self.mark_selected(key, layers[node.name])
                return

    def add_rule(self) -> None:
        from studio.gui.qt_technique_dialogs import PatternRuleDialog

        opened = self._opened()
        names = [n.name for n in opened.tree.nodes() if n.name] if opened else []
        dialog = PatternRuleDialog(names, parent=self._parent)
        dialog.accepted.connect(lambda: self.document.add_rule(*dialog.result_rule()))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        self.last_dialog = dialog

    def clear_plan(self) -> None:
        from studio.core.plan import CompressionPlan

        self.document.set_plan(CompressionPlan(settings=self.document.plan.settings), "Clear plan")

    # --- recipes -----------------------------------------------------------------------
    def open_recipe(self, path: str | None = None) -> None:
        if path is None:
            path = open_file(self._parent, "Open recipe", "recipes", RECIPE_FILTER)
        if path:
            try:
                self.document.load(path)
            except StudioError as exc:
                self._errors(str(exc), "Could not open recipe")

    def save_recipe(self, path: str | None = None, settings: dict | None = None) -> None:
        if path is None:
            path = save_file(self._parent, "Save recipe", "recipes", str(self.document.path or "recipe.yaml"),
                             RECIPE_FILTER)
        if not path:
            return
        if settings:
            from dataclasses import replace

            self.document.set_plan(replace(self.document.plan, settings={**self.document.plan.settings, **settings}),
                                   "Update run settings")
        try:
            self.document.save(path)
            self._status(f"Saved recipe to {path}")
        except (StudioError, OSError) as exc:
            self._errors(str(exc), "Could not save recipe")
