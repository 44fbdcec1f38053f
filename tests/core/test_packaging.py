"""A plain (non-editable) `pip install .` ships every file of resources/: the data-files table in
pyproject.toml must cover the folder, and the installed layout is where the code looks."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_data_files_cover_every_resource():
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = {}
    for target, patterns in table.items():
        for pattern in patterns:
            for path in ROOT.glob(pattern):
                if path.is_file():
                    shipped[path.relative_to(ROOT / "resources").as_posix()] = target
    present = {p.relative_to(ROOT / "resources").as_posix() for p in (ROOT / "resources").rglob("*") if p.is_file()}
    assert present - set(shipped) == set(), "add these to [tool.setuptools.data-files]"
    for rel, target in shipped.items():  # each file lands at share/compression-studio/resources/<rel>
        assert fnmatch.fnmatch(f"{target}/{Path(rel).name}", f"share/compression-studio/resources/{rel}")


def test_installed_layout_is_where_the_code_looks(monkeypatch, tmp_path):
    import importlib

    import studio.core.base.resources as resources

    try:
        monkeypatch.setattr("sys.prefix", str(tmp_path))
        monkeypatch.setattr(Path, "is_dir", lambda self: False)
        reloaded = importlib.reload(resources)
        assert reloaded.RESOURCES == tmp_path / "share" / "compression-studio" / "resources"
    finally:
        monkeypatch.undo()
        importlib.reload(resources)
    assert resources.RESOURCES == ROOT / "resources"
