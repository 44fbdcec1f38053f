"""File dialogs start where the user last went for that kind of file."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog

from studio.gui import qt_file_dialogs as dialogs


def test_each_kind_remembers_its_folder(monkeypatch, tmp_path):
    data, recipes = tmp_path / "data", tmp_path / "recipes"
    data.mkdir()
    recipes.mkdir()
    seen = []

    def fake_open(parent, caption, start, filters):
        seen.append(start)
        return str(data / "rows.csv"), filters

    def fake_save(parent, caption, start, filters):
        seen.append(start)
        return str(recipes / "plan.yaml"), filters

    monkeypatch.setattr(QFileDialog, "getOpenFileName", fake_open)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", fake_save)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda parent, caption, start: seen.append(start) or "")
    dialogs.remember("data", str(tmp_path / "gone" / "x.csv"))  # a folder that no longer exists is forgotten
    assert dialogs.last_folder("data") == ""
    assert dialogs.open_file(None, "Data", "data", "CSV (*.csv)") == str(data / "rows.csv")
    assert dialogs.save_file(None, "Recipe", "recipes", "recipe.yaml") == str(recipes / "plan.yaml")
    assert dialogs.open_folder(None, "Images", "data") is None  # cancelled: nothing remembered
    assert dialogs.open_file(None, "Data", "data", suggested="more.csv")
    assert dialogs.save_file(None, "Recipe", "recipes", "recipe.yaml")
    assert dialogs.save_file(None, "Recipe", "recipes", str(tmp_path / "abs.yaml"))
    assert seen == ["", "recipe.yaml", str(data), str(data / "more.csv"), str(recipes / "recipe.yaml"),
                    str(tmp_path / "abs.yaml")]
    assert dialogs.last_folder("recipes") == str(recipes) and dialogs.last_folder("data") == str(data)
