"""Trust comes from the user each time: a compressed folder's manifest can never switch on a
folder's remote code or import a Python file on its own (issue: the studio.json remote-code hole)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.cli.main import main
from studio.core.pipelines.compress import compress
from studio.core.base.errors import StudioError, UntrustedCodeError
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.plan import CompressionPlan

PAYLOAD = "import pathlib; pathlib.Path({marker!r}).write_text('ran')\n"


def _remote_code_folder(root: Path, marker: Path) -> Path:
    """A Hugging Face folder whose config asks for its own code (auto_map); importing that code
    writes `marker`, so a test can tell whether it ran."""
    folder = root / "remote"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evil", "architectures": ["EvilModel"],
        "auto_map": {"AutoConfig": "modeling_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel"}}))
    (folder / "modeling_evil.py").write_text(PAYLOAD.format(marker=str(marker)))
    return folder


def _manifest_folder(root: Path, original: dict) -> Path:
    folder = root / "compressed"
    folder.mkdir()
    (folder / "studio.json").write_text(json.dumps({
        "format": "compression-studio/compressed-model", "version": 1, "original": original,
        "input_spec": "1x4 float32", "files": {"weights": "model.safetensors", "recipe": "recipe.yaml",
                                                "report": "report.json"}}))
    (folder / "recipe.yaml").write_text("version: 1\nrules: []\n")
    return folder


def test_manifest_cannot_switch_on_remote_code(tmp_path, capsys):
    marker = tmp_path / "ran.txt"
    remote = _remote_code_folder(tmp_path, marker)
    folder = _manifest_folder(tmp_path, {"source": str(remote), "trust_remote_code": True, "name": "x"})
    with pytest.raises(UntrustedCodeError) as caught:
        load_model(LoadRequest(str(folder)))
    assert caught.value.option == "trust_remote_code" and "--trust-remote-code" in str(caught.value)
    for command in ("inspect", "export"):
        argv = [command, str(folder)] + (["--format", "onnx", "--out", str(tmp_path / "m.onnx")] if command == "export" else [])
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "--trust-remote-code" in err and "Traceback" not in err
    assert not marker.exists()


def test_manifest_cannot_import_a_python_original(tmp_path, capsys):
    marker = tmp_path / "ran.txt"
    code = tmp_path / "evil.py"
    code.write_text(PAYLOAD.format(marker=str(marker)) + "import torch\nNet = lambda: torch.nn.Linear(4, 2)\n")
    folder = _manifest_folder(tmp_path, {"source": f"{code}:Net", "name": "x"})
    with pytest.raises(UntrustedCodeError, match="runs that file") as caught:
        load_model(LoadRequest(str(folder)))
    assert caught.value.option == "trust"
    assert main(["inspect", str(folder)]) == 2
    assert "--trust" in capsys.readouterr().err
    assert not marker.exists()


def test_factory_original_reopens_when_trusted(tmp_path):
    code = tmp_path / "net.py"
    code.write_text("import torch\nINPUT_SPEC = '1x4 float32'\n"
                    "def Net():\n    torch.manual_seed(0)\n    return torch.nn.Sequential(torch.nn.Linear(4, 8), "
                    "torch.nn.ReLU(), torch.nn.Linear(8, 2))\n")
    loaded = load_model(LoadRequest(f"{code}:Net"))
    plan = CompressionPlan.from_dict({"rules": [{"layers": "0", "prune": {"mode": "unstructured", "amount": 0.5}}]})
    result = list(compress(loaded, plan))[-1].result
    from studio.core.pipelines.compressed_dir import save_compressed

    out = save_compressed(result, tmp_path / "small")
    with pytest.raises(UntrustedCodeError):
        load_model(LoadRequest(str(out)))
    reopened = load_model(LoadRequest(str(out), trust=True))
    assert reopened.kind == "compressed"


@pytest.mark.parametrize("manifest", [
    [], {"format": "compression-studio/compressed-model", "version": True},
    {"format": "compression-studio/compressed-model", "version": 1, "original": {"source": 5}},
    {"format": "compression-studio/compressed-model", "version": 1, "original": {"source": "sample:digits-cnn"},
     "input_spec": "1x1x8x8 float32", "files": {"weights": "../../etc/passwd", "recipe": "r", "report": "x"}},
])
def test_malformed_manifest_is_one_sentence(tmp_path, manifest):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "studio.json").write_text(json.dumps(manifest))
    with pytest.raises(StudioError) as caught:
        load_model(LoadRequest(str(folder)))
    assert type(caught.value) is StudioError
