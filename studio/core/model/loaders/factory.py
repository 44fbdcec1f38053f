"""`path/to/file.py:name` — the user's own architecture code plus an optional weights file.

Importing the file runs it; the GUI's open dialog says so before the user confirms.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import uuid
from pathlib import Path

from torch import nn

from studio.core.base.errors import StudioError
from studio.core.model.loaded_model import LoadedModel
from studio.core.model.loaders.guess import declared_input_spec, guess_input_spec
from studio.core.model.loaders.weights import load_weights_into


def load_factory(path: Path, name: str, weights: str | None) -> LoadedModel:
    path = path.expanduser()
    if not path.is_file():
        raise StudioError(f"{path}: no such Python file.")
    py_module = _import_file(path)
    factory = getattr(py_module, name, None)
    if factory is None:
        found = sorted(n for n, v in vars(py_module).items() if _looks_like_factory(v, py_module))
        hint = f" It defines: {', '.join(found)}." if found else ""
        raise StudioError(f"{path} has no {name!r}.{hint}")
    if not callable(factory):
        raise StudioError(f"{path}:{name} is a {type(factory).__name__}, not a class or function.")
    try:
        module = factory()
    except SystemExit as exc:
        raise StudioError(f"{path}:{name}() called sys.exit({exc.code!r}) instead of returning a model.") from None
    except Exception as exc:
        raise StudioError(f"{path}:{name}() failed: {type(exc).__name__}: {_cut(exc)}") from exc
    if not isinstance(module, nn.Module):
        raise StudioError(f"{path}:{name}() returned a {type(module).__name__}, not a torch.nn.Module.")
    notes: tuple[str, ...] = ()
    if weights:
        notes = (load_weights_into(module, Path(weights).expanduser()),)
    spec = declared_input_spec(module, py_module) or guess_input_spec(module)
    return LoadedModel(
        module=module, name=f"{path.stem}:{name}", source=f"{path}:{name}", kind="factory",
        input_spec=spec, notes=notes,
        extras={"weights": weights} if weights else {},
    )


def _looks_like_factory(value: object, py_module: object) -> bool:
    if inspect.isclass(value):
        return issubclass(value, nn.Module) and value.__module__ == py_module.__name__
    return inspect.isfunction(value) and value.__module__ == py_module.__name__


def _import_file(path: Path):
    module_name = f"studio_user_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise StudioError(f"{path}: cannot be imported as Python.")
    py_module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = py_module  # dataclasses and pickling need the module registered
    sys.path.insert(0, str(path.parent))  # let the file import its sibling modules
    try:
        spec.loader.exec_module(py_module)
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        raise StudioError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except SystemExit as exc:
        sys.modules.pop(module_name, None)
        raise StudioError(f"Importing {path} stopped: the file calls sys.exit({exc.code!r}) at import "
                          "(guard scripts with `if __name__ == \"__main__\":`).") from None
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise StudioError(f"Importing {path} failed: {type(exc).__name__}: {_cut(exc)}") from exc
    finally:
        sys.path.remove(str(path.parent))
    return py_module


def _cut(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."
