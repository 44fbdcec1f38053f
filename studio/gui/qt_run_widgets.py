"""Small parts of the run panel: a progress bar that never paints synchronously, and the final
log lines read from a run's report (without walking the whole report)."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QProgressBar

from studio.core.base.units import format_bytes, format_percent
from studio.gui.qt_run_charts import AMBER, GREEN


class DeferredProgressBar(QProgressBar):
    """A progress bar whose new value is drawn with the window's next paint. QProgressBar's
    setValue, setRange and reset repaint at once (a synchronous paint of the bar and what lies
    under it, inside the caller's turn of the event loop); with updates off around the call, the
    repaint is skipped and re-enabling them asks for an ordinary update."""

    def setValue(self, value: int) -> None:  # noqa: N802 - Qt's name
        self._deferred(super().setValue, value)

    def setRange(self, minimum: int, maximum: int) -> None:  # noqa: N802
        self._deferred(super().setRange, minimum, maximum)

    def reset(self) -> None:
        self._deferred(super().reset)

    def _deferred(self, call: Any, *args: int) -> None:
        if not self.updatesEnabled():
            call(*args)
            return
        self.setUpdatesEnabled(False)
        try:
            call(*args)
        finally:
            self.setUpdatesEnabled(True)  # posts an update()


def report_parts(report: Any) -> dict[str, Any]:
    """The parts of a run's report the final log lines read; the whole `to_dict` also walks every
    layer row and history point, in the turn that shows the Compare tab."""
    if report is None:
        return {}
    if not (hasattr(report, "before") and hasattr(report, "after")):
        return report.to_dict()
    return {key: part.to_dict() for key in ("before", "after", "finetune")
            if (part := getattr(report, key, None)) is not None}


def finished_lines(report: dict[str, Any], elapsed: float) -> list[tuple[str, str]]:
    """The log lines (text, colour) that close a run: its time, size and accuracy before → after,
    and what fine-tuning did."""
    before, after = report.get("before") or {}, report.get("after") or {}
    parts = [f"finished in {elapsed:.1f} s"]
    for key, label, fmt in (("compressed_bytes", "zipped size", format_bytes), ("accuracy", "accuracy",
                                                                              format_percent)):
        if before.get(key) is not None and after.get(key) is not None:
            parts.append(f"{label} {fmt(before[key])} → {fmt(after[key])}")
    lines = [(" · ".join(parts), GREEN)]
    finetune = report.get("finetune")
    if finetune:
        resolved = finetune.get("resolved", {})
        kept = f"kept step {finetune['best_step']}" if finetune.get("kept") == "best" else "kept the starting weights"
        lines.append((f"fine-tuning: lr {resolved.get('lr', 0):g} {resolved.get('schedule', '')}, {finetune['steps']} "
                      f"steps ({finetune['stopped']}), {kept}", GREEN if finetune.get("improved") else AMBER))
    return lines


__all__ = ["DeferredProgressBar", "finished_lines", "report_parts"]
