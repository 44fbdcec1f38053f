"""Open and input-spec dialogs: validation and the request they build."""

from __future__ import annotations

from PySide6.QtWidgets import QDialogButtonBox

from studio.core.model.input_spec import InputSpec
from studio.gui.qt_input_spec_dialog import InputSpecDialog
from studio.gui.qt_open_dialog import FACTORY, FACTORY_WARNING, FILE, SAMPLE, OpenModelDialog


def _ok(dialog):
    return dialog._buttons.button(QDialogButtonBox.StandardButton.Ok)


def test_sample_request(qtbot):
    dialog = OpenModelDialog()
    qtbot.addWidget(dialog)
    assert dialog.kind() == SAMPLE
    assert dialog.sample_combo.count() >= 2
    assert dialog.sample_description.text()
    request = dialog.request()
    assert request.source.startswith("sample:")
    assert not request.trust and request.input_spec is None


def test_factory_warning_and_request(qtbot):
    dialog = OpenModelDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.set_kind(FACTORY)
    assert dialog.factory_warning.isVisible()
    assert dialog.factory_warning.text() == FACTORY_WARNING
    assert not _ok(dialog).isEnabled()
    dialog.factory_file_edit.setText("/tmp/model.py")
    dialog.factory_name_edit.setText("Net")
    dialog.weights_edit.setText("/tmp/w.safetensors")
    assert _ok(dialog).isEnabled()
    request = dialog.request()
    assert request.source == "/tmp/model.py:Net"
    assert request.weights == "/tmp/w.safetensors"


def test_input_spec_is_validated_inline(qtbot):
    dialog = OpenModelDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.set_kind(FILE)
    dialog.path_edit.setText("/tmp/model.pt")
    dialog.spec_edit.setText("1xbad")
    assert dialog.spec_error.isVisible()
    assert not _ok(dialog).isEnabled()
    dialog.spec_edit.setText("1x3x8x8 float32")
    assert not dialog.spec_error.isVisible()
    assert _ok(dialog).isEnabled()
    dialog.trust_check.setChecked(True)
    request = dialog.request()
    assert request.input_spec == InputSpec.parse("1x3x8x8 float32")
    assert request.trust and request.weights is None


def test_input_spec_dialog(qtbot):
    dialog = InputSpecDialog("1x1x8x8 float32")
    qtbot.addWidget(dialog)
    assert _ok(dialog).isEnabled()
    assert dialog.spec() == InputSpec.parse("1x1x8x8 float32")
    dialog.edit.setText("")
    assert not _ok(dialog).isEnabled() and dialog.spec() is None
    dialog.edit.setText("input_ids 1x16 int64 [0,100)")
    assert dialog.spec().keyword
