"""Technique and pattern-rule dialogs: built from each registered config, validated inline."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402

from studio.core.techniques import all_techniques  # noqa: E402
from studio.core.techniques.base import TECHNIQUES, Technique, TechniqueConfig, option  # noqa: E402
from studio.gui.qt_technique_dialogs import PatternRuleDialog, TechniqueDialog  # noqa: E402


all_techniques()  # every technique module, found by discovery
KEYS = sorted(TECHNIQUES)

# One invalid edit per technique: (field, value) pairs set through the widgets.
INVALID = {
    "prune": {"amount": 1.0},
    "quantize": {"dtype": "int4", "group_size": 100},
    "lowrank": {"rank": 8, "rank_fraction": 0.5},
}
# A non-default, valid config per technique for the edit-in-place round trip.
EDITED = {
    "prune": {"mode": "structured", "amount": 0.3, "importance": "l1"},
    "quantize": {"dtype": "int8", "activations": "static", "per_channel": False},
}


def _set(editor, name, value):
    """Drive a field the way a user would; an Optional field's 'Set' box is ticked first."""
    field = editor.editors[name]
    if hasattr(field, "check"):
        field.check.setChecked(value is not None)
        if value is not None:
            field.inner.put(value)
    else:
        field.put(value)


@pytest.mark.parametrize("key", KEYS)
def test_defaults_are_valid(qtbot, key):
    technique = TECHNIQUES[key]
    dialog = TechniqueDialog(key, ["features.0.0", "features.1.0", "classifier"])
    qtbot.addWidget(dialog)
    assert dialog.objectName() == "techniqueDialog"
    assert dialog.windowTitle() == f"{technique.label.rstrip('…')} 3 layers"
    assert dialog.config() == technique.config_type()
    assert dialog.ok_button.isEnabled()
    assert not dialog.editor.error.isVisibleTo(dialog)


@pytest.mark.parametrize("key", KEYS)
def test_invalid_value_disables_ok(qtbot, key):
    if key not in INVALID:
        pytest.skip(f"no invalid example for {key}")
    dialog = TechniqueDialog(key, ["fc"])
    qtbot.addWidget(dialog)
    dialog.show()
    for name, value in INVALID[key].items():
        _set(dialog.editor, name, value)
    assert dialog.config() is None
    assert not dialog.ok_button.isEnabled()
    assert dialog.editor.error.isVisible()
    assert dialog.editor.problems()
    assert dialog.editor.problems()[0] in dialog.editor.error.text()


def test_single_layer_title(qtbot):
    dialog = TechniqueDialog("prune", ["features.0.0"])
    qtbot.addWidget(dialog)
    assert dialog.windowTitle() == "Prune features.0.0"


@pytest.mark.parametrize("key", sorted(set(EDITED) & set(KEYS)))
def test_existing_config_prefills_and_round_trips(qtbot, key):
    technique = TECHNIQUES[key]
    config = technique.config_type.from_dict(EDITED[key])
    dialog = TechniqueDialog(key, ["fc"], config=config)
    qtbot.addWidget(dialog)
    for name, value in EDITED[key].items():
        assert dialog.editor.editors[name].get() == value
    assert dialog.config() == config
    assert dialog.ok_button.text() == "Apply"


def test_none_choice_is_a_value(qtbot):
    """quantize activations: null (weight-only int8) is offered as 'none' and round-trips."""
    if "quantize" not in KEYS:
        pytest.skip("quantization not registered")
    config = TECHNIQUES["quantize"].config_type(activations=None)
    dialog = TechniqueDialog("quantize", ["fc"], config=config)
    qtbot.addWidget(dialog)
    assert dialog.editor.editors["activations"].widget.currentText() == "none"
    assert dialog.config() == config


@pytest.mark.skipif("lowrank" not in KEYS, reason="low-rank module not written yet")
def test_lowrank_optional_fields(qtbot):
    dialog = TechniqueDialog("lowrank", ["fc"])
    qtbot.addWidget(dialog)
    optional = [name for name, field in dialog.editor.editors.items() if hasattr(field, "check")]
    assert {"rank", "rank_fraction"} <= set(optional)
    for name in optional:
        _set(dialog.editor, name, None)
    _set(dialog.editor, "rank", 16)
    config = dialog.config()
    assert config is not None and config.rank == 16


NAMES = ["", "features", "features.0", "features.0.0", "features.1.0", "classifier", "classifier.fc"]


def test_pattern_rule_counts_matches(qtbot):
    dialog = PatternRuleDialog(NAMES)
    qtbot.addWidget(dialog)
    assert dialog.objectName() == "patternRuleDialog"
    assert not dialog.ok_button.isEnabled()
    qtbot.keyClicks(dialog.pattern_edit, "features.*")
    assert dialog.match_label.text() == "Matches 3 layers"
    assert dialog.ok_button.isEnabled()
    dialog.pattern_edit.setText("re:classifier(\\.fc)?")
    assert dialog.match_label.text() == "Matches 2 layers"
    dialog.pattern_edit.setText("re:(")
    assert dialog.match_label.text() == "Invalid regular expression."
    assert not dialog.ok_button.isEnabled()


def test_pattern_rule_result_follows_technique(qtbot):
    dialog = PatternRuleDialog(NAMES, pattern="*")
    qtbot.addWidget(dialog)
    combo = dialog.technique_combo
    assert [combo.itemData(i) for i in range(combo.count())] == list(all_techniques())
    index = dialog.technique_combo.findData("prune")
    dialog.technique_combo.setCurrentIndex(index)
    _set(dialog.editor(), "amount", 0.25)
    pattern, key, config = dialog.result_rule()
    assert (pattern, key) == ("*", "prune")
    assert config == TECHNIQUES["prune"].config_type(amount=0.25)
    _set(dialog.editor(), "amount", 0.0)
    assert not dialog.ok_button.isEnabled()


# A made-up technique exercises every editor kind without depending on real modules; its
# choices and ranges come from field metadata, as the real configs' do.
@dataclass(frozen=True)
class FakeConfig(TechniqueConfig):
    method: str = option("svd", choices=("svd", "tucker"), label="Factorization", help="how to factorize")
    rank: int | None = None
    rank_fraction: float | None = option(0.25, range=(0.0, 1.0))
    exact: bool = False
    note: str = ""

    def problems(self) -> list[str]:
        if self.rank is not None and self.rank_fraction is not None:
            return ["set either rank or rank_fraction, not both"]
        return []


class Fake(Technique):
    name = "fake"
    config_type = FakeConfig
    order = 9
    label = "Factorize…"
    supported_types = "Linear"


def test_generic_editors_for_any_config(qtbot):
    dialog = TechniqueDialog(Fake(), ["a", "b"])
    qtbot.addWidget(dialog)
    dialog.show()
    kinds = {name: type(field.widget).__name__ for name, field in dialog.editor.editors.items()}
    assert kinds == {"method": "QComboBox", "rank": "QWidget", "rank_fraction": "QWidget",
                     "exact": "QCheckBox", "note": "QLineEdit"}
    assert dialog.windowTitle() == "Factorize 2 layers"
    assert dialog.config() == FakeConfig()
    assert not dialog.editor.editors["rank"].inner.widget.isEnabled()
    _set(dialog.editor, "rank", 32)
    assert not dialog.ok_button.isEnabled()
    assert "not both" in dialog.editor.error.text()
    _set(dialog.editor, "rank_fraction", None)
    assert dialog.config() == FakeConfig(rank=32, rank_fraction=None)
    _set(dialog.editor, "method", "tucker")
    _set(dialog.editor, "exact", True)
    _set(dialog.editor, "note", "hi")
    assert dialog.config() == FakeConfig("tucker", 32, None, True, "hi")
