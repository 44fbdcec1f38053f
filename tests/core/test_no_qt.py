"""studio.core must never import Qt and stays importable headless."""

import pkgutil
import subprocess
import sys

import studio.core


def test_core_imports_no_qt():
    modules = [m.name for m in pkgutil.walk_packages(studio.core.__path__, "studio.core.")
               if not m.name.rsplit(".", 1)[-1].startswith("train_")]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph', 'PyQt5', 'PyQt6')]\n"
        "assert not bad, bad\n"
    )
    assert len(modules) > 10
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_pure_core_modules_do_not_import_torch():
    """The window imports these before torch is ready, so start-up stays fast."""
    code = (
        "import sys\n"
        "import studio.core.model.model_tree, studio.core.base.units, studio.core.model.input_spec, studio.core.base.events\n"
        "import studio.core.base.cancel, studio.core.base.errors, studio.core.model.loaders, studio.core.model.loaders.samples\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
