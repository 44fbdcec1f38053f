"""A run's result as it comes back from a child process: the compressed model as a compressed
folder on disk (safetensors + recipe + report), never a pickled module. The window shows the
report at once and rebuilds the module only when the user keeps or saves it."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from studio.core.base.errors import StudioError
from studio.core.model.loaders import LoadRequest

if TYPE_CHECKING:
    from studio.core.model.loaded_model import LoadedModel
    from studio.core.report.compression import RunReport
    from studio.core.techniques.base import LayerChange


@dataclass(frozen=True)
class SavedRun:
    """`folder` is a compressed-model folder in the job runner's scratch space; `request` opened
    the original in the child."""

    folder: Path
    report: RunReport
    changes: tuple[LayerChange, ...]
    request: LoadRequest

    def open(self, original: LoadedModel) -> LoadedModel:
        """The compressed model, rebuilt on `original` (the recipe replayed on a copy; `original`
        itself is not modified) with the child's weights loaded strictly."""
        from studio.core.pipelines.compressed_dir import load_compressed_dir

        loaded = load_compressed_dir(self.folder, trust=True, open_original=lambda _request: original)
        return loaded

    def save_to(self, out: str | os.PathLike[str], force: bool = False) -> Path:
        """Copy the folder to `out` atomically (a temp sibling renamed into place)."""
        out = Path(out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
            raise StudioError(f"{out} already exists; choose another folder or pass --force to replace it.")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            shutil.copytree(self.folder, tmp, dirs_exist_ok=True)
            os.chmod(tmp, 0o755)
            if out.exists():
                old = out.parent / f".{out.name}.old-{os.getpid()}"
                os.replace(out, old)
                os.replace(tmp, out)
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)
            else:
                os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out
