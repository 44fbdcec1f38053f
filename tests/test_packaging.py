"""The standalone app's pieces that can be checked without building it (`make dist` builds it and
runs packaging/smoke.sh, which runs the same self-test inside the frozen app)."""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "packaging" / "launcher.py"


def test_launcher_calls_freeze_support_before_anything_else() -> None:
    """The forkserver, its resource tracker and spawned workers re-run the frozen executable with
    their own arguments: freeze_support must see them before the studio's command line does."""
    tree = ast.parse(LAUNCHER.read_text())
    main_block = next(node for node in tree.body if isinstance(node, ast.If))
    first = main_block.body[0]
    assert isinstance(first, ast.Expr) and ast.unparse(first) == "multiprocessing.freeze_support()"


def test_the_spec_bundles_every_module_discovery_walks() -> None:
    """Techniques and low-rank methods are found by a package walk, not by imports PyInstaller sees."""
    hooks = pytest.importorskip("PyInstaller.utils.hooks")
    import studio.core.techniques as techniques
    import studio.core.techniques.lowrank_methods as methods

    bundled = set(hooks.collect_submodules("studio"))
    walked = {f"{package.__name__}.{info.name}" for package in (techniques, methods)
              for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_")}
    assert len(walked) >= 8 and walked <= bundled
    assert 'collect_submodules("studio")' in (ROOT / "packaging" / "studio.spec").read_text()


def test_self_test_runs_its_jobs_in_the_child_process(tmp_path: Path) -> None:
    """What the smoke test runs inside the frozen app, from the source tree: a plan run and an int8
    ONNX export through the window's job runner, in the job worker process, with screenshots."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("STUDIO_IN_PROCESS", None)
    done = subprocess.run([sys.executable, str(LAUNCHER), "--self-test", str(tmp_path)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["self_test"] == "ok" and not figures["frozen"] and not figures["in_process_backend"]
    assert figures["job_worker_pids"] and figures["window_pid"] not in figures["job_worker_pids"]
    assert {"prune", "quantize", "lowrank"} <= set(figures["techniques"])
    assert figures["export_bytes"] == (tmp_path / "digits-small.onnx").stat().st_size > 0
    for name in ("welcome", "run", "export"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
