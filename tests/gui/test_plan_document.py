"""PlanDocument: every edit is one undoable swap of immutable plans."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from studio.core.base.errors import StudioError  # noqa: E402
from studio.core.plan import CompressionPlan, Rule  # noqa: E402
from studio.core.plan.editing import clear_layers  # noqa: E402
from studio.core.techniques.pruning import PruneConfig  # noqa: E402
from studio.core.techniques.quantization import QuantizeConfig  # noqa: E402
from studio.gui.qt_plan_document import PlanDocument  # noqa: E402


@pytest.fixture
def document(qtbot):
    return PlanDocument()


def test_mark_undo_redo(qtbot, document):
    before = document.plan
    with qtbot.waitSignal(document.planChanged) as signal:
        assert document.mark(["features.0.0", "features.1.0"], "prune", PruneConfig(amount=0.3))
    after = document.plan
    assert signal.args == [after]
    assert after.rules == (Rule("features.0.0", {"prune": PruneConfig(amount=0.3)}),
                           Rule("features.1.0", {"prune": PruneConfig(amount=0.3)}))
    assert document.undo_stack.text(0) == "Prune 2 layers"
    assert document.dirty
    with qtbot.waitSignal(document.planChanged) as signal:
        document.undo_stack.undo()
    assert document.plan == before and signal.args == [before]
    assert not document.dirty
    with qtbot.waitSignal(document.planChanged):
        document.undo_stack.redo()
    assert document.plan == after


def test_noop_edits_push_nothing(document):
    assert not document.clear(["features.0.0"])
    assert not document.mark([], "prune", PruneConfig())
    assert not document.remove_rule(3)
    assert document.undo_stack.count() == 0


def test_clear_under_default_rule_adds_null_exclusion(document):
    document.add_rule("*", "quantize", QuantizeConfig())
    document.mark(["features.0.0"], "prune", PruneConfig())
    expected = clear_layers(document.plan, ["features.0.0"])
    assert document.clear(["features.0.0"])
    assert document.plan == expected
    assert Rule("features.0.0", {"quantize": None}) in document.plan.rules
    texts = [document.undo_stack.text(i) for i in range(document.undo_stack.count())]
    assert texts == ["Quantize *", "Prune features.0.0", "Clear features.0.0"]


def test_readable_texts(document):
    document.mark(["fc"], "quantize", None)
    document.clear(["fc"], "quantize")
    document.add_rule("features.*", "prune", PruneConfig())
    document.remove_rule(0)
    texts = [document.undo_stack.text(i) for i in range(document.undo_stack.count())]
    assert texts == ["Exclude fc from quantize", "Clear quantize from fc", "Prune features.*",
                     "Remove rule features.*"]


def test_set_plan_is_undoable(qtbot, document):
    document.mark(["fc"], "prune", PruneConfig())
    edited = document.plan
    recipe = CompressionPlan((Rule("*", {"quantize": QuantizeConfig(dtype="fp16")}),), {"data": "digits"})
    with qtbot.waitSignal(document.planChanged):
        assert document.set_plan(recipe)
    assert document.plan == recipe
    assert document.undo_stack.undoText() == "Open recipe"
    document.undo_stack.undo()
    assert document.plan == edited


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_load_round_trip(qtbot, document, tmp_path, suffix):
    document.mark(["features.0.0"], "prune", PruneConfig(mode="structured", amount=0.25))
    document.add_rule("re:classifier.*", "quantize", QuantizeConfig(activations=None))
    path = tmp_path / f"recipe{suffix}"
    with qtbot.waitSignal(document.dirtyChanged) as signal:
        document.save(path)
    assert signal.args == [False] and not document.dirty
    assert document.path == path
    saved = document.plan

    other = PlanDocument()
    with qtbot.waitSignal(other.planChanged):
        other.load(path)
    assert other.plan == saved
    assert other.path == path and not other.dirty
    assert other.undo_stack.undoText() == f"Open recipe{suffix}"
    other.undo_stack.undo()
    assert other.plan == CompressionPlan() and other.dirty


def test_load_error_leaves_plan_alone(document, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - layers: fc\n    prune: {amount: 2, bogus: 1}\n")
    with pytest.raises(StudioError):
        document.load(bad)
    assert document.plan == CompressionPlan() and document.undo_stack.count() == 0


def test_save_without_path_fails(document):
    with pytest.raises(ValueError):
        document.save()


def test_reset_clears_history(qtbot, document):
    document.mark(["fc"], "prune", PruneConfig())
    with qtbot.waitSignal(document.planChanged):
        document.reset()
    assert document.plan == CompressionPlan()
    assert document.undo_stack.count() == 0 and not document.dirty


def test_undo_actions_follow_stack(qtbot, document):
    from PySide6.QtWidgets import QWidget

    host = QWidget()
    qtbot.addWidget(host)
    undo, redo = document.create_actions(host)
    assert not undo.isEnabled()
    document.mark(["fc"], "prune", PruneConfig())
    assert undo.isEnabled() and undo.text() == "Undo Prune fc"
    undo.trigger()
    assert redo.isEnabled() and document.plan == CompressionPlan()


def test_projection_uses_the_current_plan(document, digits_tree):
    from studio.core.pipelines.opening import LoadRequest, load_model

    loaded = load_model(LoadRequest("sample:digits-cnn"))
    name = next(n.name for n in digits_tree.nodes() if n.type in ("Conv2d", "Linear"))
    document.mark([name], "prune", PruneConfig(mode="unstructured", amount=0.5))
    projection = document.projection(loaded.module, digits_tree)
    assert name in projection.layers
    assert projection.after.nonzero < projection.before.nonzero
