"""A compressed model on disk: a folder with the weights (safetensors), the recipe, the
report and where the original came from. No pickle: reopening rebuilds the structure by
replaying the recipe on the original, then loads the saved weights strictly. Realized int4
layers are saved as their packed codes and scales (4 bits a weight); the replay builds them
empty and the saved codes fill them, nothing is quantized again."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from studio.core.base.atomic import atomic_dir
from studio.core.base.errors import StudioError, UntrustedCodeError
from studio.core.model.input_spec import InputSpec
from studio.core.model.loaded_model import LoadedModel
from studio.core.model.loaders import MANIFEST, LoadRequest, is_factory_source
from studio.core.model.loaders import load_model as load_source
from studio.core.base.units import clip

FORMAT = "compression-studio/compressed-model"
FORMAT_VERSION = 1


def save_compressed(result, out_dir: str | os.PathLike[str], force: bool = False) -> Path:
    """Write the folder atomically (a temp folder renamed into place)."""
    from safetensors.torch import save_model

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise StudioError(f"{out} already exists; choose another folder or pass --force to replace it.")
    original = result.original
    request = original.extras.get("request", {"source": original.source})
    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "original": {**request, "name": original.name, "kind": original.kind},
        "input_spec": str(original.input_spec), "input_keyword": original.input_spec.keyword,
        "files": {"weights": "model.safetensors", "recipe": "recipe.yaml", "report": "report.json"},
    }
    with atomic_dir(out) as tmp:  # what --force replaces goes only once the new folder is in place
        save_model(result.compressed, str(tmp / "model.safetensors"))
        (tmp / "recipe.yaml").write_text(result.plan.dumps("yaml"), encoding="utf-8")
        (tmp / "report.json").write_text(json.dumps(result.report.to_dict(), indent=2) + "\n", encoding="utf-8")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


def load_compressed_dir(path: Path, trust: bool = False, trust_remote_code: bool = False,
                        open_original: Callable[[LoadRequest], LoadedModel] = load_source) -> LoadedModel:
    """Trust comes from the user's request only: the manifest is data from wherever the folder came
    from, so its `trust_remote_code` is never obeyed and a Python original needs `trust`.
    `open_original` opens the original source (the open pipeline passes itself, so an original that
    is itself a compressed folder opens too)."""
    from safetensors.torch import load_model

    from studio.core.pipelines.apply import apply_assignments_, editable_copy
    from studio.core.pipelines.compress import validate
    from studio.core.plan import CompressionPlan
    from studio.core.techniques.base import ApplyContext
    from studio.core.techniques.int4_packed import packed_shells

    manifest = _read_manifest(path)
    origin: dict[str, Any] = manifest["original"]
    if is_factory_source(origin["source"]) and not trust:
        raise UntrustedCodeError(
            f"{path} was compressed from Python code ({clip(origin['source'], 120)}); reopening it imports and runs "
            "that file. Open it only if you trust that file: --trust (window: confirm the prompt).")
    try:
        spec = InputSpec.parse(manifest["input_spec"], keyword=manifest.get("input_keyword"))
    except StudioError as exc:
        raise StudioError(f"{path / MANIFEST}: bad input spec ({exc}).") from exc
    original = open_original(LoadRequest(origin["source"], weights=origin.get("weights"), trust=trust,
                                       trust_remote_code=trust_remote_code, input_spec=spec))
    plan = CompressionPlan.load(path / manifest["files"]["recipe"])
    assignments = validate(original, plan)
    model = editable_copy(original.module, assignments)
    with packed_shells():
        for _ in apply_assignments_(model, assignments, ApplyContext(example_inputs=original.example_inputs())):
            pass
    try:
        missing, unexpected = load_model(model, str(path / manifest["files"]["weights"]), strict=False)
    except Exception as exc:
        raise StudioError(f"{path}: the saved weights do not fit the rebuilt model ({exc}).") from exc
    if missing or unexpected:
        raise StudioError(f"{path}: the saved weights do not fit the rebuilt model "
                          f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}).")
    model.eval()
    return LoadedModel(module=model, name=path.name, source=str(path), kind="compressed", input_spec=spec,
                       notes=(f"Compressed from {origin['source']} with {len(plan.rules)} rule(s).",),
                       extras={"original": origin, "data": original.extras.get("data"),
                               "report": _saved_report(path / manifest["files"]["report"])})


def _saved_report(path: Path):
    """The folder's report, as a kept model carries it (`extras["report"]`); None if unreadable."""
    from studio.core.report.compression import read_report

    try:
        return read_report(path)
    except StudioError:
        return None


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StudioError(f"{path / MANIFEST}: unreadable ({exc}).") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or manifest.get("version") != FORMAT_VERSION or isinstance(manifest.get("version"), bool):
        raise StudioError(f"{path}: not a compressed-model folder this studio can read.")
    origin, files = manifest.get("original"), manifest.get("files")
    if not (isinstance(origin, dict) and isinstance(origin.get("source"), str) and origin["source"].strip()
            and isinstance(origin.get("weights"), (str, type(None))) and isinstance(manifest.get("input_spec"), str)
            and isinstance(files, dict) and all(isinstance(files.get(k), str) for k in ("weights", "recipe", "report"))):
        raise StudioError(f"{path / MANIFEST}: incomplete manifest (original source, input spec or file names missing).")
    for key in ("weights", "recipe", "report"):
        name = files[key]
        if Path(name).name != name or name in ("", ".", ".."):
            raise StudioError(f"{path / MANIFEST}: file names must stay inside the folder, got {clip(name, 120)!r}.")
    return manifest

