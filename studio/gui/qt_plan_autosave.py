"""Unsaved plans survive a closed window or a crash: while the plan differs from its saved
recipe it is written (atomically) to a small file per model source beside the studio's
settings; opening that model again restores it as one undoable step. Saving the recipe,
or undoing back to the saved state, removes the file."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from studio.core.base.errors import StudioError
from studio.core.plan import CompressionPlan, PlanError
from studio.gui.qt_resources import settings

if TYPE_CHECKING:
    from studio.gui.qt_plan_document import PlanDocument

RESTORED = "Restored the unsaved plan from your last session (Ctrl+Z undoes it)"


def autosave_folder() -> Path:
    """Beside the settings file, so tests' temporary settings keep their autosaves too."""
    return Path(settings().fileName()).parent / "autosave"


class PlanAutosave(QObject):
    def __init__(self, document: PlanDocument, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.key: str | None = None   # the model source the plan belongs to; None: no autosave
        self._restoring = False
        document.planChanged.connect(self._write)
        document.dirtyChanged.connect(self._write)

    def path(self) -> Path | None:
        if self.key is None:
            return None
        digest = hashlib.sha1(self.key.encode("utf-8")).hexdigest()[:16]
        return autosave_folder() / f"plan-{digest}.yaml"

    def attach(self, key: str | None) -> bool:
        """A model was opened (`key`: its source and weights; None for in-memory models).
        Returns True when an unsaved plan was restored."""
        self.key = key
        path = self.path()
        if path is None or not path.is_file():
            return False
        try:
            plan = CompressionPlan.load(path)
        except (StudioError, PlanError, OSError):
            path.unlink(missing_ok=True)  # unreadable: nothing worth keeping
            return False
        if not plan.rules and not plan.settings:
            return False
        self._restoring = True
        try:
            self.document.set_plan(plan, "Restore unsaved plan")
        finally:
            self._restoring = False
        return True

    def _write(self, *_: object) -> None:
        path = self.path()
        if path is None or self._restoring:
            return
        plan = self.document.plan
        if not self.document.dirty or (not plan.rules and not plan.settings):
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            plan.save(path)  # atomic, like every file the studio writes
        except OSError:
            pass  # autosave is best effort; the plan in the window is untouched
