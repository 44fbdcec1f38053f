"""Checking an output path before any work: a run that takes minutes must not fail at the end
because `--out` is unwritable, too long, taken, or a folder that is not ours to replace."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from studio.core.base.errors import StudioError

# temporary siblings add to the name: `.NAME.old-PID` / `.NAME.XXXXXXXX` for folders; for files also
# the report `NAME.report.json` and its atomic temporary `.NAME.report.json.XXXXXXXX.tmp`
NAME_MARGIN = {True: 20, False: 30}
MANIFEST = "studio.json"


def check_output(path: str | os.PathLike[str], *, folder: bool, force: bool) -> Path:
    """The usable output path, or a StudioError saying why not. `folder`: the output is a
    folder (a compressed model) rather than a file (an export)."""
    text = os.fspath(path)
    if not text.strip():
        raise StudioError("--out is empty; name the output " + ("folder." if folder else "file."))
    out = Path(text).expanduser()
    _check_length(out, NAME_MARGIN[folder])
    if out.is_symlink() or out.exists():
        _check_existing(out, folder=folder, force=force)
    _check_writable(out.absolute().parent)
    return out


def _check_length(out: Path, margin: int) -> None:
    full = os.fsencode(str(out.absolute()))
    if len(full) > 4000:
        raise StudioError(f"--out is {len(full):,} bytes long; paths are limited to 4,000.")
    if any(len(os.fsencode(part)) > 255 for part in out.parts):  # before any lookup: those fail on them
        limit = 255
    else:
        limit = _name_max(out)
    for part in out.parts:
        if len(os.fsencode(part)) > limit:
            raise StudioError(f"--out has a name of {len(os.fsencode(part)):,} bytes ({part[:40]}...); "
                              f"names are limited to {limit} here.")
    if len(os.fsencode(out.name)) > limit - margin:
        raise StudioError(f"--out name {out.name[:40]}... is too long; keep it under {limit - margin} bytes.")


def _name_max(out: Path) -> int:
    anchor = _existing_ancestor(out.absolute())
    try:
        return int(os.pathconf(anchor, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        try:
            if candidate.exists():
                return candidate
        except OSError:  # e.g. a name too long to look up
            continue
    return Path(path.anchor or "/")


def _check_existing(out: Path, *, folder: bool, force: bool) -> None:
    if folder:
        if out.is_dir() and not out.is_symlink():
            if not any(out.iterdir()):
                return
            if not force:
                raise StudioError(f"{out} already exists; choose another folder or pass --force to replace it.")
            if not (out / MANIFEST).is_file():
                raise StudioError(f"{out} is a folder that is not a compressed model; it is never replaced, "
                                  "even with --force. Choose another --out.")
            return
        if not force:
            raise StudioError(f"{out} already exists (a file); choose another folder or pass --force to replace it.")
        return
    if out.is_dir():
        raise StudioError(f"{out} is a folder; --out names the file to write (e.g. {out / 'model.onnx'}).")
    if not force:
        raise StudioError(f"{out} already exists; pass --force to replace it.")


def _check_writable(parent: Path) -> None:
    anchor = _existing_ancestor(parent)
    if not anchor.is_dir():
        raise StudioError(f"{anchor} is a file, so nothing can be written under it; choose another --out.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".studio-probe-", dir=anchor)
    except OSError as exc:
        raise StudioError(f"Cannot write in {anchor} ({exc.strerror or exc}); choose another --out.") from None
    os.close(fd)
    os.unlink(probe)


def check_free_space(out: Path, needed_bytes: int) -> None:
    """At least the model's size (plus a margin) must fit where the output goes."""
    anchor = _existing_ancestor(out.absolute().parent)
    try:
        free = shutil.disk_usage(anchor).free
    except OSError:
        return
    if free < needed_bytes * 1.1 + 1_000_000:
        raise StudioError(f"{anchor} has {free / 1e6:.1f} MB free; the output needs about "
                          f"{needed_bytes / 1e6:.1f} MB. Free some space or choose another --out.")
