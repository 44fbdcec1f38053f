"""On-disk sweep cache keyed by weights, data and settings: finished sweeps reopen instantly,
interrupted ones resume (cells are appended one JSON line at a time as they finish)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from studio.core.base.atomic import write_text_atomic
from studio.core.pipelines.sensitivity.result import SensitivityCell, SensitivityResult

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return Path(base or Path.home() / ".cache" / "compression-studio") / "sensitivity"


def _tensor(h: Any, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().cpu().contiguous().reshape(-1)
    h.update(f"{tensor.dtype}{tensor.numel()}".encode())
    h.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")


def _tree(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        _tensor(h, value)
    elif isinstance(value, dict):
        for key in sorted(value):
            h.update(str(key).encode())
            _tree(h, value[key])
    elif isinstance(value, (list, tuple)):
        for item in value:
            _tree(h, item)
    else:
        h.update(repr(value).encode())


def sweep_key(model: torch.nn.Module, batches: list, labels: torch.Tensor | None, plan: dict) -> str:
    """sha256 of every weight and buffer, the exact batches and labels, and the sweep's plan."""
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        _tensor(h, tensor)
    _tree(h, batches)
    _tree(h, labels)
    h.update(json.dumps(plan, sort_keys=True).encode())
    return h.hexdigest()[:32]


class CellStore:
    """`<key>.jsonl` holds finished cells as they come; `<key>.json` the finished result."""

    def __init__(self, folder: Path | None, key: str) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.key = key

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def _path(self, suffix: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{self.key}{suffix}"

    def finished(self) -> SensitivityResult | None:
        if not self.enabled or not self._path(".json").is_file():
            return None
        try:
            return SensitivityResult.from_dict(json.loads(self._path(".json").read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable: measure again

    def partial(self) -> tuple[dict[tuple[str, str], SensitivityCell], dict[str, SensitivityCell], dict]:
        """(cells, inverse cells, header values) from an interrupted sweep; a torn last line is ignored."""
        cells: dict[tuple[str, str], SensitivityCell] = {}
        inverse: dict[str, SensitivityCell] = {}
        header: dict = {}
        if not self.enabled or not self._path(".jsonl").is_file():
            return cells, inverse, header
        for line in self._path(".jsonl").read_text(encoding="utf-8").splitlines():
            try:
                item = json.loads(line)
                if "cell" in item:
                    cell = SensitivityCell.from_dict(item["cell"])
                    cells[(cell.layer, cell.setting)] = cell
                elif "inverse" in item:
                    cell = SensitivityCell.from_dict(item["inverse"])
                    inverse[cell.layer] = cell
                else:
                    header.update(item)
            except (ValueError, KeyError, TypeError):
                continue
        return cells, inverse, header

    def append(self, kind: str, payload: Any) -> None:
        if not self.enabled:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self._path(".jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps({kind: payload.to_dict() if hasattr(payload, "to_dict") else payload}) + "\n")
            f.flush()

    def finish(self, result: SensitivityResult) -> None:
        if not self.enabled:
            return
        write_text_atomic(self._path(".json"), json.dumps(result.to_dict()) + "\n")
        self._path(".jsonl").unlink(missing_ok=True)
