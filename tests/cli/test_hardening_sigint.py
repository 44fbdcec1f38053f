"""Ctrl-C at several stages of `studio compress` and `studio export`, in a real process: exit
130, one `studio:` line, no traceback, nothing left behind (no output, no temporary files)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

RECIPE = ("rules:\n  - {layers: classifier.1, lowrank: {rank: 8}}\n"
          "  - {layers: '*', quantize: {dtype: int8, activations: static}}\n")


def _interrupt(argv: list[str], marker: str, cwd: Path) -> tuple[int, str]:
    """Start `studio ARGV`, wait for `marker` on stderr, send SIGINT; (exit code, stderr)."""
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "studio", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd, env=env)
    seen = []
    watchdog = threading.Timer(300, proc.kill)  # a child that never prints the marker nor exits ends the loop
    watchdog.start()
    try:
        for line in proc.stderr:
            seen.append(line)
            if marker in line:
                break
        else:
            pytest.fail(f"{marker} never appeared: {''.join(seen)[-1000:]}")
        proc.send_signal(signal.SIGINT)
        sent = time.perf_counter()
        _, rest = proc.communicate(timeout=120)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.perf_counter() - sent < 60  # prompt, not after the whole run
    return proc.returncode, "".join(seen) + rest


def _assert_clean_cancel(code: int, err: str, folder: Path, out: Path) -> None:
    lines = [line for line in err.splitlines() if line.startswith("studio:")]
    assert code == 130, err[-1500:]
    assert "Traceback" not in err and len(lines) == 1 and "cancelled" in lines[0], err[-1500:]
    assert not out.exists()
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("marker", ["[validate]", "[evaluate]", "[finetune]", "[latency]"])
def test_ctrl_c_during_compress(tmp_path, marker):
    (tmp_path / "r.yaml").write_text(RECIPE)
    out = tmp_path / "out"
    code, err = _interrupt(["compress", "sample:digits-cnn", "--recipe", "r.yaml", "--out", "out", "--data", "digits",
                            "--finetune-epochs", "1"], marker, tmp_path)
    _assert_clean_cancel(code, err, tmp_path, out)


@pytest.mark.parametrize("fmt,precision,marker", [("onnx", "fp32", "[convert]"), ("onnx", "fp32", "[verify]")])
def test_ctrl_c_during_export(tmp_path, fmt, precision, marker):
    out = tmp_path / f"m.{fmt}"
    code, err = _interrupt(["export", "sample:digits-cnn", "--format", fmt, "--precision", precision, "--out", out.name],
                           marker, tmp_path)
    _assert_clean_cancel(code, err, tmp_path, out)
    assert not list(tmp_path.glob("*.report.json"))
