"""Dialogs that edit a technique's config, built from its dataclass fields.

Nothing here names a technique: a new technique module with a config dataclass gets a
dialog for free. Each field's choices, label, help, spin-box range and the value an unset
optional field starts from come from its dataclass field metadata (`techniques.base.option`);
a field without choices gets the editor of its type.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QSizePolicy, QSpinBox, QStackedWidget,
                               QVBoxLayout, QWidget)

from studio.core.base.errors import StudioError
from studio.core.plan import pattern_matches
from studio.core.techniques import all_techniques
from studio.core.techniques.base import Technique, TechniqueConfig
from studio.gui.qt_plan_document import layers_text, technique_verb

NONE_TEXT = "none"


def field_label(f: dataclasses.Field) -> str:
    return str(f.metadata.get("label") or f.name.replace("_", " ").capitalize())


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """`int | None` → (int, True); other hints pass through."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) < len(typing.get_args(hint)):
            return (args[0] if len(args) == 1 else str), True
    return hint, False


def config_help(config_type: type[TechniqueConfig]) -> str:
    """The config's own docstring (dataclass's generated signature text is not help)."""
    doc = " ".join((config_type.__doc__ or "").replace("`", "").split())
    return "" if not doc or doc.startswith(f"{config_type.__name__}(") else doc


def field_choices(f: dataclasses.Field) -> tuple[Any, ...] | None:
    """The field's `choices` metadata; a function is called (choices read from a registry)."""
    choices = f.metadata.get("choices")
    if callable(choices):
        choices = choices()
    return tuple(choices) if choices else None


class _FieldEditor:
    """One field's widget plus value get/set; `changed` is called on every edit."""

    def __init__(self, widget: QWidget, get: Callable[[], Any], put: Callable[[Any], None]) -> None:
        self.widget, self.get, self.put = widget, get, put


def _combo(choices: tuple[Any, ...], changed: Callable[[], None]) -> _FieldEditor:
    box = QComboBox()
    items = list(choices)
    for choice in items:
        box.addItem(NONE_TEXT if choice is None else str(choice))

    def put(value: Any) -> None:
        if value not in items:      # keep an unknown value visible so its problem can be shown
            items.append(value)
            box.addItem(NONE_TEXT if value is None else str(value))
        box.setCurrentIndex(items.index(value))

    box.currentIndexChanged.connect(changed)
    return _FieldEditor(box, lambda: items[box.currentIndex()] if box.currentIndex() >= 0 else None, put)


def _float(f: dataclasses.Field, changed: Callable[[], None]) -> _FieldEditor:
    spin = QDoubleSpinBox()
    if "range" in f.metadata:
        low, high = f.metadata["range"]
        spin.setRange(float(low), float(high))
        spin.setSingleStep((high - low) / 20)
        spin.setDecimals(3)
    else:
        spin.setRange(-1e9, 1e9)
        spin.setDecimals(4)
    spin.valueChanged.connect(changed)
    return _FieldEditor(spin, lambda: round(spin.value(), spin.decimals()), lambda v: spin.setValue(float(v)))


def _int(f: dataclasses.Field, changed: Callable[[], None]) -> _FieldEditor:
    spin = QSpinBox()
    low, high = f.metadata.get("range", (0, 2**31 - 1))
    spin.setRange(int(low), int(high))
    spin.valueChanged.connect(changed)
    return _FieldEditor(spin, spin.value, lambda v: spin.setValue(int(v)))


def _bool(f: dataclasses.Field, changed: Callable[[], None]) -> _FieldEditor:
    check = QCheckBox()
    check.toggled.connect(changed)
    return _FieldEditor(check, check.isChecked, lambda v: check.setChecked(bool(v)))


def _text(f: dataclasses.Field, changed: Callable[[], None]) -> _FieldEditor:
    edit = QLineEdit()
    edit.textChanged.connect(changed)
    return _FieldEditor(edit, edit.text, lambda v: edit.setText("" if v is None else str(v)))


# Editors by field type; a new field type is one entry here.
EDITORS: dict[type, Callable[[dataclasses.Field, Callable[[], None]], _FieldEditor]] = {
    bool: _bool, int: _int, float: _float, str: _text,
}
UNSET_START: dict[type, Any] = {int: 1, float: 0.5}


def _optional(inner: _FieldEditor, start: Any, changed: Callable[[], None]) -> _FieldEditor:
    """A 'Set' checkbox in front of the editor; unticked means None."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    check = QCheckBox("Set")
    row.addWidget(check)
    row.addWidget(inner.widget, 1)
    inner.widget.setEnabled(False)
    check.toggled.connect(inner.widget.setEnabled)
    check.toggled.connect(changed)

    def put(value: Any) -> None:
        check.setChecked(value is not None)
        if value is not None:
            inner.put(value)
        elif start is not None:
            inner.put(start)

    editor = _FieldEditor(box, lambda: inner.get() if check.isChecked() else None, put)
    editor.check = check  # type: ignore[attr-defined]  # tests and callers tick it directly
    editor.inner = inner  # type: ignore[attr-defined]
    return editor


class ConfigEditor(QWidget):
    """A form over one config dataclass; `config()` is None while the values are invalid."""

    changed = Signal()

    def __init__(self, config_type: type[TechniqueConfig], config: TechniqueConfig | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.config_type = config_type
        self.editors: dict[str, _FieldEditor] = {}
        self._loading = False
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if config_help(config_type):
            about = QLabel(config_help(config_type))
            about.setObjectName("hint")
            about.setWordWrap(True)
            form.addRow(about)
        hints = typing.get_type_hints(config_type)
        for f in dataclasses.fields(config_type):
            editor = self._make_editor(f, hints.get(f.name, str))
            editor.widget.setObjectName(f"field_{f.name}")
            if f.metadata.get("help"):
                editor.widget.setToolTip(str(f.metadata["help"]))
            self.editors[f.name] = editor
            form.addRow(field_label(f), editor.widget)
        self.error = QLabel()
        self.error.setObjectName("inlineError")
        self.error.setWordWrap(True)
        form.addRow(self.error)
        self._config: TechniqueConfig | None = None
        self._problems: list[str] = []
        self.set_config(config if config is not None else config_type())

    def _make_editor(self, f: dataclasses.Field, hint: Any) -> _FieldEditor:
        base, optional = _unwrap_optional(hint)
        choices = field_choices(f) if base is str else None
        if choices is not None:
            # None among the choices is a value of its own ('none'), not an unset field.
            if None in choices or not optional:
                return _combo(choices, self._on_edit)
            return _optional(_combo(choices, self._on_edit), choices[0], self._on_edit)
        editor = EDITORS.get(base, _text)(f, self._on_edit)
        if not optional:
            return editor
        # An unset field starts from its `start` metadata (e.g. lowrank energy 0.9) when ticked.
        start = f.metadata.get("start", UNSET_START.get(base))
        return _optional(editor, start, self._on_edit)

    # --- values ---------------------------------------------------------------------
    def set_config(self, config: TechniqueConfig) -> None:
        self._loading = True
        try:
            for name, editor in self.editors.items():
                editor.put(getattr(config, name))
        finally:
            self._loading = False
        self._on_edit()

    def values(self) -> dict[str, Any]:
        return {name: editor.get() for name, editor in self.editors.items()}

    def config(self) -> TechniqueConfig | None:
        return self._config

    def problems(self) -> list[str]:
        return list(self._problems)

    def _on_edit(self, *_: Any) -> None:
        if self._loading:
            return
        try:
            config = self.config_type.from_dict(self.values())
            problems = config.problems()
        except (StudioError, TypeError, ValueError) as exc:
            config, problems = None, [str(exc)]
        self._config = None if problems else config
        self._problems = problems
        self.error.setText("\n".join(f"• {p}" for p in problems))
        self.error.setVisible(bool(problems))
        self.changed.emit()


def _technique(technique: str | Technique) -> Technique:
    return all_techniques()[technique] if isinstance(technique, str) else technique


def _buttons(dialog: QDialog, ok_text: str) -> QDialogButtonBox:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.button(QDialogButtonBox.StandardButton.Ok).setText(ok_text)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons


class TechniqueDialog(QDialog):
    """Edit one technique's config for the selected layers; OK only while it is valid."""

    def __init__(self, technique: str | Technique, layers: Sequence[str] = (),
                 config: TechniqueConfig | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("techniqueDialog")
        self.technique = _technique(technique)
        self.key = self.technique.name
        verb = technique_verb(self.technique)
        self.setWindowTitle(f"{verb} {layers_text(layers)}" if layers else verb)
        self.setMinimumWidth(420)
        layout = QVBoxLayout(self)
        heading = QLabel(f"{verb} <b>{layers_text(layers)}</b>" if layers else verb)
        heading.setObjectName("dialogHeading")
        heading.setStyleSheet("font-size: 12pt;")  # the app sheet fixes QWidget fonts; override here
        layout.addWidget(heading)
        if getattr(self.technique, "supported_types", ""):
            hint = QLabel(f"Applies to {self.technique.supported_types} layers; others are skipped.")
            hint.setObjectName("hint")
            hint.setWordWrap(True)
            layout.addWidget(hint)
        self.editor = ConfigEditor(self.technique.config_type, config)
        layout.addWidget(self.editor)
        layout.addStretch(1)
        self.buttons = _buttons(self, "Apply" if config is not None else verb)
        layout.addWidget(self.buttons)
        self.editor.changed.connect(self._sync)
        self._sync()

    @property
    def ok_button(self):
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def _sync(self) -> None:
        self.ok_button.setEnabled(self.editor.config() is not None)

    def config(self) -> TechniqueConfig | None:
        return self.editor.config()


class PatternRuleDialog(QDialog):
    """Add a rule by pattern; the match count tells the user what the pattern reaches."""

    def __init__(self, layer_names: Sequence[str] = (), pattern: str = "", technique: str | None = None,
                 config: TechniqueConfig | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("patternRuleDialog")
        self.setWindowTitle("Add rule by pattern")
        self.setMinimumWidth(480)
        self._names = tuple(layer_names)
        self._techniques = all_techniques()
        layout = QVBoxLayout(self)
        hint = QLabel("Select layers by glob (<code>features.*</code>, <code>*</code> also crosses dots), "
                      "regex (<code>re:encoder\\.layer\\.\\d+\\.output</code>) or <code>*</code> for every layer. "
                      "Exact names beat patterns; patterns beat <code>*</code>.")
        hint.setObjectName("hint")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        top = QFormLayout()
        top.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.pattern_edit = QLineEdit(pattern)
        self.pattern_edit.setObjectName("patternEdit")
        self.pattern_edit.setPlaceholderText("features.*")
        top.addRow("Layers", self.pattern_edit)
        self.match_label = QLabel()
        self.match_label.setObjectName("matchCount")
        top.addRow("", self.match_label)
        self.technique_combo = QComboBox()
        self.technique_combo.setObjectName("techniqueCombo")
        self.stack = QStackedWidget()
        self.editors: dict[str, ConfigEditor] = {}
        for key, tech in self._techniques.items():
            self.technique_combo.addItem(technique_verb(tech), key)
            editor = ConfigEditor(tech.config_type, config if key == technique else None)
            editor.changed.connect(self._sync)
            self.editors[key] = editor
            self.stack.addWidget(editor)
        top.addRow("Technique", self.technique_combo)
        layout.addLayout(top)
        settings = QGroupBox("Settings")
        QVBoxLayout(settings).addWidget(self.stack)
        layout.addWidget(settings)
        layout.addStretch(1)
        self.buttons = _buttons(self, "Add rule")
        layout.addWidget(self.buttons)
        self.technique_combo.currentIndexChanged.connect(self._on_technique)
        self.pattern_edit.textChanged.connect(self._sync)
        if technique in self._techniques:
            self.technique_combo.setCurrentIndex(list(self._techniques).index(technique))
        self._on_technique()

    @property
    def ok_button(self):
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def technique_key(self) -> str:
        return self.technique_combo.currentData()

    def editor(self) -> ConfigEditor:
        return self.editors[self.technique_key()]

    def pattern(self) -> str:
        return self.pattern_edit.text().strip()

    def matches(self) -> list[str] | None:
        """Names the pattern selects; None while the pattern is empty or an invalid regex."""
        pattern = self.pattern()
        try:
            return [n for n in self._names if n and pattern_matches(pattern, n)] if pattern else None
        except re.error:
            return None

    def _on_technique(self, *_: Any) -> None:
        current = self.editor()
        for editor in self.editors.values():  # the stack sizes to the shown editor only
            vertical = QSizePolicy.Policy.Preferred if editor is current else QSizePolicy.Policy.Ignored
            editor.setSizePolicy(QSizePolicy.Policy.Preferred, vertical)
        self.stack.setCurrentWidget(current)
        self._sync()

    def _sync(self, *_: Any) -> None:
        matches = self.matches()
        if matches is not None:
            text = f"Matches {len(matches)} layer{'s' if len(matches) != 1 else ''}"
        else:
            text = "Invalid regular expression." if self.pattern() else "Type a layer name or pattern."
        self.match_label.setText(text)
        self.ok_button.setEnabled(matches is not None and self.editor().config() is not None)

    def result_rule(self) -> tuple[str, str, TechniqueConfig | None]:
        """(pattern, technique key, config) — what `PlanDocument.add_rule` takes."""
        return self.pattern(), self.technique_key(), self.editor().config()
