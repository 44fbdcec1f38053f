"""Hostile-input probe (issue 15), not a test: prints pass/fail counts per category as JSON.

    PYTHONPATH=TREE .venv/bin/python tests/hardening_probe.py [--only CAT ...] [--fuzz N]

Runs against whichever `studio` is first on sys.path, so the same probe measures a tree before
and after a change. Most cases call `studio.cli.main.main` in-process; interrupts and stdout purity
run the console entry point in a subprocess.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from pathlib import Path

RESULTS: dict[str, dict] = {}
WORK = Path(tempfile.mkdtemp(prefix="hprobe-"))
BASE = "version: 1\nrules:\n  - layers: classifier.1\n    prune: {amount: 0.5}\n"


class Hang(Exception):
    pass


def record(cat: str, name: str, ok: bool, detail: str = "") -> None:
    entry = RESULTS.setdefault(cat, {"cases": 0, "pass": 0, "fail": 0, "failures": []})
    entry["cases"] += 1
    entry["pass" if ok else "fail"] += 1
    if not ok:
        entry["failures"].append(f"{name}: {detail[:300]}")


def _alarm(signum, frame):
    raise Hang()


def cli(argv: list[str], timeout: int = 120) -> tuple[object, str, str]:
    from studio.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 1
            except Hang:
                rc = "hang"
            except BaseException:
                err.write(traceback.format_exc())
                rc = "raised"
    finally:
        signal.alarm(0)
    return rc, out.getvalue(), err.getvalue()


def one_line_error(rc, err: str, code: int = 2) -> tuple[bool, str]:
    lines = [line for line in err.splitlines() if line.startswith("studio:")]
    ok = rc == code and len(lines) == 1 and "Traceback" not in err and len(lines[0]) < 3000 \
        and "Warning" not in err
    return ok, f"rc={rc} lines={len(lines)} err={err[-300:]!r}"


def sub(argv: list[str], timeout: int = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio", *argv], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def write(name: str, text: str) -> Path:
    path = WORK / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


FACTORY = textwrap.dedent('''
    import os, sys
    import torch
    from torch import nn
    {prelude}
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            {init}
            self.conv = nn.Conv2d({channels}, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 8 * 8, 10)
        def forward(self, x):
            {forward}
            return self.fc(torch.relu(self.conv(x)).flatten(1))
    INPUT_SPEC = "1x{channels}x8x8 float32"
''')


def factory(name: str, prelude: str = "", init: str = "pass", forward: str = "pass", channels: int = 1) -> str:
    path = write(f"{name}.py", FACTORY.format(prelude=prelude, init=init, forward=forward, channels=channels))
    return f"{path}:Net"


def clean(out: Path) -> bool:
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return not out.exists() and not leftovers


# --- categories -----------------------------------------------------------------------

def bad_models() -> None:
    cat = "bad models and input specs"
    empty = write("empty.pt", "")
    rnd = WORK / "random.pt"
    rnd.write_bytes(os.urandom(2000))
    (WORK / "emptydir").mkdir(exist_ok=True)
    cfg = WORK / "cfgonly"
    cfg.mkdir(exist_ok=True)
    (cfg / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}')
    import pickle

    from torch import nn

    with open(WORK / "raw.pkl", "wb") as handle:
        pickle.dump(nn.Linear(2, 2), handle)
    cases = [
        ["inspect", str(WORK / "nope.pt")], ["inspect", str(empty)], ["inspect", str(rnd)],
        ["inspect", str(WORK / "emptydir")], ["inspect", str(cfg)], ["inspect", str(WORK / "raw.pkl")],
        ["inspect", factory("exit_import", prelude="sys.exit(3)")],
        ["inspect", factory("exit_build", init="sys.exit(4)")],
        ["inspect", factory("raise_import", prelude="raise ValueError('x' * 100000)")],
        ["inspect", str(WORK / "exit_import.py")],
    ]
    for shape in ["100000,100000,100000", "99999999999999999999", "1,1,0,8", "1," * 20 + "1",
                  "9" * 5000, "1,-1,8,8", "0"]:
        cases.append(["inspect", "sample:digits-cnn", "--input-shape", shape])
    for spec in ["1x4 int64 [5,2)", "1x4 int64 [5,5)", "1x4 int64 [0,99999999999999999999)",
                 "1x4 int64 [-99999999999999999999,2)", "1x4 int8 [0,300)", "1x1x8x8 floaty", ";",
                 "x" * 100000, "a 1x1x8x8; a 1x1x8x8", "1x1x8x8 float32 extra"]:
        cases.append(["inspect", "sample:digits-cnn", "--input", spec])
    cases.append(["inspect", "sample:minilm-sentiment", "--input", "input_ids 1x8 int64 [5,2)"])
    cases.append(["inspect", "sample:digits-cnn", "--input-dtype", "int8"])
    for argv in cases:
        rc, out, err = cli(argv)
        ok, detail = one_line_error(rc, err)
        record(cat, " ".join(a[:40] for a in argv), ok, detail)


def _random_value(rng: random.Random):
    return rng.choice([None, True, False, 0, -1, 1, 1.5, 2**40, float("nan"), float("inf"), "abc", "int8", "",
                       [], [1, 2], {}, {"a": 1}, "x" * 5000, "re:(", "*", 0.5, 3])


def fuzz_recipe(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.08:  # structural attacks
        return rng.choice([
            "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
            "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e]\n"
            "rules: *f\n",
            "rules: &r [*r]\n", "rules: " + "[" * 3000 + "]" * 3000 + "\n", "settings: &s {a: *s}\n",
            "rules:\n" + "  - {layers: '*', prune: {amount: 0.5}}\n" * 2000,
            '{"rules": ' + "[" * 5000 + "]" * 5000 + "}",
            "version: 1\nrules:\n  - layers: 're:(.*.*)*features'\n    prune: {amount: 0.5}\n",
            "version: 1\nrules:\n  - layers: 're:(a|aa)*b(x+x+)+y'\n    prune: {amount: 0.5}\n",
            "!!python/object/apply:os.system ['echo hi']\n", "\t\x00\xff", "rules: [{layers: " + "a" * 200000 + "}]",
        ])
    techniques = {"prune": ["mode", "amount", "importance"], "quantize": ["dtype", "activations", "group_size",
                                                                          "per_channel"],
                  "lowrank": ["method", "rank", "rank_fraction", "energy", "solver"], "bogus": ["x"]}
    good = {"mode": ["unstructured", "structured", "2:4"], "amount": [0.3, 0.5], "importance": ["l1", "l2"],
            "dtype": ["int8", "int4", "fp16"], "activations": ["dynamic", "static", None],
            "group_size": [8, 32], "per_channel": [True, False], "method": ["svd", "tucker", "cp"],
            "rank": [2, 4], "rank_fraction": [0.5], "energy": [0.9], "solver": ["auto", "exact"], "x": [1]}
    layers = ["*", "classifier.1", "classifier.4", "features.1.0", "re:features\\.[01]\\.0", "classifier.*",
              "nothing", "re:(", "features.?.0", "x" * 3000]
    rules = []
    for _ in range(rng.randint(0, 4)):
        rule: dict = {"layers": rng.choice(layers) if rng.random() < 0.9 else _random_value(rng)}
        for technique in rng.sample(sorted(techniques), rng.randint(0, 2)):
            if rng.random() < 0.2:
                rule[technique] = _random_value(rng)
                continue
            config = {}
            for key in rng.sample(techniques[technique], rng.randint(0, len(techniques[technique]))):
                config[key] = rng.choice(good[key]) if rng.random() < 0.7 else _random_value(rng)
            rule[technique] = config
        rules.append(rule if rng.random() < 0.95 else _random_value(rng))
    recipe: dict = {"version": 1 if rng.random() < 0.9 else _random_value(rng),
                    "rules": rules if rng.random() < 0.95 else _random_value(rng)}
    if rng.random() < 0.2:
        recipe["settings"] = rng.choice([{"data": "digits"}, [1, 2], "x", {"data": 5}, {"finetune": 3}])
    import yaml

    text = json.dumps(recipe, allow_nan=True) if rng.random() < 0.3 else yaml.safe_dump(recipe)
    return text


def recipe_fuzz(n: int) -> None:
    cat = "recipe fuzz (in-process)"
    from studio.core.pipelines.compress import validate
    from studio.core.base.errors import StudioError
    from studio.core.pipelines.opening import LoadRequest, load_model
    from studio.core.plan import CompressionPlan

    loaded = load_model(LoadRequest("sample:digits-cnn"))
    rng = random.Random(15)
    signal.signal(signal.SIGALRM, _alarm)
    for i in range(n):
        text = fuzz_recipe(rng)
        fmt = "json" if text.lstrip().startswith("{") else "yaml"
        start = time.perf_counter()
        signal.alarm(20)
        try:
            validate(loaded, CompressionPlan.loads(text, fmt))
            ok, detail = True, ""
        except StudioError as exc:
            ok, detail = len(str(exc)) < 20000, f"message of {len(str(exc))} chars"
        except Hang:
            ok, detail = False, "hang"
        except BaseException as exc:
            ok, detail = False, f"{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            signal.alarm(0)
        if time.perf_counter() - start > 5:
            ok, detail = False, f"took {time.perf_counter() - start:.1f} s"
        record(cat, f"#{i} {text[:60]!r}", ok, detail)


def recipes_cli() -> None:
    cat = "same recipes through the CLI"
    bad = {
        "rules5": "rules: 5\n", "prune5": "rules: [{layers: classifier.1, prune: 5}]\n",
        "qint8": "rules: [{layers: classifier.1, quantize: int8}]\n",
        "lrsvd": "rules: [{layers: classifier.1, lowrank: svd}]\n", "settings": "rules: []\nsettings: [1, 2]\n",
        "dtypelist": "rules: [{layers: classifier.1, quantize: {dtype: [int8]}}]\n",
        "vtrue": "version: true\nrules: []\n", "v10": "version: 1.0\nrules: []\n",
        "amountabc": "rules: [{layers: classifier.1, prune: {amount: abc}}]\n",
        "amountnan": "rules: [{layers: classifier.1, prune: {amount: .nan}}]\n",
        "energyinf": "rules: [{layers: classifier.1, lowrank: {energy: .inf}}]\n",
        "rankfloat": "rules: [{layers: classifier.1, lowrank: {rank: 2.5}}]\n",
        "group40": "rules: [{layers: classifier.1, quantize: {dtype: int4, group_size: 1099511627776}}]\n",
        "bomb": "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nrules: *g\n",
        "selfref": "rules: &r [*r]\n", "deep": "rules: " + "[" * 5000 + "]" * 5000 + "\n",
        "deepjson": '{"rules": ' + "[" * 100000 + "]" * 100000 + "}",
        "catastrophic": "rules: [{layers: 're:(.*.*)*features', prune: {amount: 0.5}}]\n",
        "longname": "rules: [{layers: '" + "a" * 5_000_000 + "', prune: {amount: 0.5}}]\n",
        "longkey": "rules: [{layers: classifier.1, prune: {" + "k" * 100000 + ": 1}}]\n",
        "python": "!!python/object/apply:os.system ['echo pwned']\n", "binary": "\x00\x01\x02",
        "keys": "{1: 2, [a]: b}\n", "nullrules": "rules: [null, 3, [1]]\n", "datanum": "rules: []\nsettings: {data: 5}\n",
        "finetune3": "rules: []\nsettings: {finetune: 3}\n", "date": "rules: [{layers: 2020-01-01, prune: {}}]\n",
        "technique_list": "rules: [{layers: classifier.1, prune: [amount, 0.5]}]\n",
        "nested_none": "rules: [{layers: classifier.1, lowrank: {rank: null, energy: null}, prune: {amount: 1}}]\n",
        "perch": "rules: [{layers: classifier.1, quantize: {per_channel: yes_please}}]\n",
        "emptydoc": "", "tabs": "rules:\n\t- x\n", "multi": "rules: []\n---\nrules: []\n",
    }
    json_cases = {"deepjson"}
    for name, text in bad.items():
        recipe = write(f"r_{name}." + ("json" if name in json_cases else "yaml"), text)
        out = WORK / f"out_{name}"
        rc, _, err = cli(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(out)], timeout=60)
        if rc == 0 and name in ("emptydoc", "nested_none"):
            ok, detail = True, ""
        else:
            ok, detail = one_line_error(rc, err)
        record(cat, name, ok and (rc == 0 or clean(out)), detail)
    # lowrank: false must never apply SVD
    recipe = write("r_lrfalse.yaml", "rules:\n  - {layers: classifier.1, lowrank: false}\n"
                                     "  - {layers: classifier.4, prune: {amount: 0.5}}\n")
    out = WORK / "out_lrfalse"
    rc, _, err = cli(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(out), "--json"])
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
    svd = [row for row in report.get("layers", []) if row.get("technique") == "lowrank"]
    record(cat, "lowrank false", (rc == 0 and not svd) or one_line_error(rc, err)[0], f"rc={rc} svd={svd}")
    recipe = write("r_hiddenstr.yaml", "rules: []\nsettings: {finetune: {epochs: 1, max_steps: 2, hidden: 'classifier.*'}}\n")
    rc, _, err = cli(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(WORK / "o_h"),
                      "--data", "digits"])
    record(cat, "hidden as a string", rc == 2 or rc == 0, f"rc={rc} {err[-200:]}")
    for key, value in [("temperature", ".nan"), ("lr", ".inf"), ("hidden_weight", ".nan"), ("epochs", "1.5"),
                       ("epochs", "abc"), ("lr", "abc"), ("batch_size", "abc"), ("seed", "abc")]:
        recipe = write(f"r_ft_{key}.yaml", f"rules: []\nsettings: {{finetune: {{epochs: 1, max_steps: 3, {key}: {value}}}}}\n")
        out = WORK / f"o_ft_{key}_{value.strip('.')}"
        rc, _, err = cli(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(out), "--data", "digits"])
        ok, detail = one_line_error(rc, err)
        record(cat, f"finetune {key}={value}", ok and clean(out), detail)


def data_specs() -> None:
    cat = "data specs"
    import numpy as np
    from PIL import Image

    recipe = write("r_data.yaml", BASE)
    ok_cases, bad_cases = [], []
    bad_cases += ["digits:extra", "sample:x", "random:abc", "random:0", "nope", "csv:", f"csv:{WORK}/none.csv",
                  f"imagefolder:{WORK}/none", "tensors:/dev/null"]
    ok_cases += ["digits", "random", "sample", "random:5"]
    for rows in (0, 1, 2, 3):
        np.save(WORK / f"t{rows}.npy", np.zeros((rows, 1, 8, 8), dtype=np.float32))
    bad_cases.append(f"tensors:{WORK}/t0.npy")
    ok_or_bad = [f"tensors:{WORK}/t1.npy", f"tensors:{WORK}/t2.npy", f"tensors:{WORK}/t3.npy"]
    np.save(WORK / "tch.npy", np.zeros((4, 3, 8, 8), dtype=np.float32))
    bad_cases.append(f"tensors:{WORK}/tch.npy")
    (WORK / "obj.npy").write_bytes(b"\x93NUMPY garbage")
    bad_cases.append(f"tensors:{WORK}/obj.npy")
    folder = WORK / "imgs12"
    for label in range(12):
        (folder / f"c{label:02d}").mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), color=label * 10).save(folder / f"c{label:02d}" / "a.png")
    bad_cases.append(f"imagefolder:{folder}")
    bomb = WORK / "bomb" / "a"
    bomb.mkdir(parents=True, exist_ok=True)
    Image.new("1", (14000, 14000)).save(bomb / "big.png")
    Image.new("L", (8, 8)).save(bomb / "ok.png")
    bad_cases.append(f"imagefolder:{WORK / 'bomb'}")
    (WORK / "emptyimgs" / "a").mkdir(parents=True, exist_ok=True)
    bad_cases.append(f"imagefolder:{WORK / 'emptyimgs'}")
    # csv: needs a tokenizer; on a BERT folder without tokenizer files it must refuse
    from transformers import BertConfig, BertForSequenceClassification

    bert = WORK / "tinybert"
    if not bert.exists():
        BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1,
                                                 num_attention_heads=2, intermediate_size=16,
                                                 num_labels=2)).save_pretrained(bert)
    write("ok.csv", "text,label\nhello there,0\ngood film,1\nbad film,0\nfine,1\n")
    write("nolabel.csv", "text,label\nhello there\ngood film,1\n")
    write("toomany.csv", "text,label\nhello,0\nthere,7\nx,1\n")
    write("empty.csv", "text,label\n")
    (WORK / "latin1.csv").write_bytes("text,label\ncaf\xe9,1\n".encode("latin-1"))
    for spec, model in [(f"csv:{WORK}/ok.csv", str(bert)), (f"csv:{WORK}/nolabel.csv", "sample:minilm-sentiment"),
                        (f"csv:{WORK}/toomany.csv", "sample:minilm-sentiment"), (f"csv:{WORK}/empty.csv", "sample:minilm-sentiment"),
                        (f"csv:{WORK}/latin1.csv", "sample:minilm-sentiment"), (f"csv:{WORK}/ok.csv", "sample:digits-cnn")]:
        bad_cases.append((spec, model))
    three = factory("three_channels", channels=3)
    bad_cases.append(("digits", three))
    runs = [(c, True) for c in bad_cases] + [(c, False) for c in ok_cases] + [(c, None) for c in ok_or_bad]
    for index, (case, must_fail) in enumerate(runs):
        spec, model = case if isinstance(case, tuple) else (case, "sample:digits-cnn")
        out = WORK / f"o_data{index}"
        rc, _, err = cli(["compress", model, "--recipe", str(recipe if "digits" in model or model.endswith(":Net") else write("r_none.yaml", "rules: []\n")),
                          "--out", str(out), "--data", spec, "--json"])
        if must_fail:
            ok, detail = one_line_error(rc, err)
            ok = ok and clean(out)
        elif must_fail is False:
            ok, detail = rc == 0, f"rc={rc} {err[-200:]}"
        else:
            ok = rc == 0 or (one_line_error(rc, err)[0] and clean(out))
            detail = f"rc={rc} {err[-200:]}"
        record(cat, f"{spec[:60]} on {model[-30:]}", ok, detail)


def _interrupt(argv: list[str], marker: str | None, delay: float, out: Path) -> tuple[bool, str]:
    proc = subprocess.Popen([sys.executable, "-u", "-m", "studio", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    err_lines = []
    start = time.perf_counter()
    if marker is None:
        time.sleep(delay)
    else:
        for line in proc.stderr:
            err_lines.append(line)
            if marker in line:
                break
        time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    sent = time.perf_counter()
    try:
        _, rest = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return False, "no exit 60 s after SIGINT"
    err = "".join(err_lines) + rest
    lines = [line for line in rest.splitlines() if line.startswith("studio:")]
    ok = proc.returncode == 130 and "Traceback" not in err and len(lines) == 1 and clean(out)
    return ok, (f"rc={proc.returncode} after {time.perf_counter() - sent:.1f} s (started {sent - start:.1f} s in) "
                f"lines={len(lines)} clean={clean(out)} tail={err[-250:]!r}")


def interrupts(which: str) -> None:
    if which == "compress":
        cat = "compress interrupted (SIGINT)"
        recipe = write("r_int.yaml", "rules:\n  - {layers: classifier.1, lowrank: {rank: 8}}\n"
                                     "  - {layers: '*', quantize: {dtype: int8, activations: static}}\n")
        plan = [(None, 1.5), ("[validate]", 0.0), ("[apply]", 0.0), ("[measure]", 0.0), ("[evaluate]", 0.0),
                ("[finetune]", 0.5), ("[finetune]", 2.0), ("[latency]", 0.0), ("[latency]", 0.05)]
        for index, (marker, delay) in enumerate(plan):
            out = WORK / f"o_int{index}"
            ok, detail = _interrupt(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(out),
                                     "--data", "digits", "--finetune-epochs", "1"], marker, delay, out)
            record(cat, f"{marker} +{delay}", ok, detail)
    else:
        cat = "export interrupted (SIGINT)"
        plan = [("onnx", "fp32", None, 1.5), ("onnx", "fp32", "[prepare]", 0.0), ("onnx", "fp32", "[convert]", 0.3),
                ("onnx", "int8", "[quantize]", 0.0), ("onnx", "fp32", "[verify]", 0.0),
                ("tflite", "fp32", "[convert]", 1.0)]
        for index, (fmt, precision, marker, delay) in enumerate(plan):
            out = WORK / f"e_int{index}.{fmt}"
            ok, detail = _interrupt(["export", "sample:digits-cnn", "--format", fmt, "--precision", precision,
                                     "--out", str(out)], marker, delay, out)
            record(cat, f"{fmt} {precision} {marker} +{delay}", ok, detail)


def overwrite() -> None:
    cat = "overwrite without --force"
    recipe = write("r_ow.yaml", BASE)
    taken = WORK / "taken"
    taken.mkdir(exist_ok=True)
    (taken / "precious.txt").write_text("keep")
    rc, _, err = cli(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(taken)])
    record(cat, "compress over a non-empty folder", one_line_error(rc, err)[0] and (taken / "precious.txt").exists(),
           f"rc={rc} {err[-200:]}")
    rc, _, err = cli(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(taken), "--force"])
    record(cat, "compress --force over a folder that is not a compressed model",
           (taken / "precious.txt").exists(), f"rc={rc} {err[-200:]}")
    afile = write("afile.txt", "keep")
    rc, _, err = cli(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(afile)])
    record(cat, "compress over a file", one_line_error(rc, err)[0] and afile.read_text() == "keep", err[-200:])
    rc, _, err = cli(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(afile), "--force"])
    left = [p.name for p in WORK.iterdir() if p.name.startswith(".afile")]
    record(cat, "compress --force over a file leaves nothing", rc == 0 and not left, f"rc={rc} left={left}")
    onnx = write("n.onnx", "keep")
    rc, _, err = cli(["export", "sample:digits-cnn", "--format", "onnx", "--out", str(onnx)])
    record(cat, "export over a file", one_line_error(rc, err)[0] and onnx.read_text() == "keep", err[-200:])
    (WORK / "m.report.json").write_text("keep")
    (WORK / "m.onnx.report.json").write_text("keep")
    rc, _, err = cli(["export", "sample:digits-cnn", "--format", "onnx", "--out", str(WORK / "m.onnx")])
    record(cat, "export never overwrites an existing report",
           (WORK / "m.report.json").read_text() == "keep" and (rc != 0 or (WORK / "m.onnx.report.json").read_text() == "keep"
                                                               or one_line_error(rc, err)[0]), f"rc={rc} {err[-200:]}")


def json_purity() -> None:
    cat = "--json stdout pure JSON"
    recipe = write("r_json.yaml", "rules:\n  - {layers: fc, prune: {amount: 0.5}}\n")
    noisy = {
        "import_print": dict(prelude="print('hello from import')"),
        "import_write": dict(prelude="os.write(1, b'raw import\\n')"),
        "build_print": dict(init="print('building')"),
        "build_write": dict(init="os.write(1, b'raw build\\n')"),
        "forward_print": dict(forward="print('forward')"),
        "forward_write": dict(forward="os.write(1, b'raw forward\\n')"),
    }
    for name, parts in noisy.items():
        model = factory(f"noisy_{name}", **parts)
        for argv in (["inspect", model, "--json"],
                     ["compress", model, "--recipe", str(recipe), "--out", str(WORK / f"oj_{name}"), "--json"],
                     ["export", model, "--format", "onnx", "--out", str(WORK / f"oj_{name}.onnx"), "--json"]):
            try:
                result = sub(argv)
                json.loads(result.stdout)
                ok, detail = result.returncode == 0, result.stderr[-200:]
            except (ValueError, subprocess.TimeoutExpired) as exc:
                ok, detail = False, f"{type(exc).__name__} stdout={getattr(result, 'stdout', '')[:120]!r}"
            record(cat, f"{name} {argv[0]}", ok, detail)
    result = sub(["inspect", str(WORK / "raw.pkl")])
    record(cat, "raw pickle: no warning before the message", "Warning" not in result.stderr
           and result.stderr.startswith("studio:"), result.stderr[:200])


def paths() -> None:
    cat = "paths"
    recipe = write("r_paths.yaml", BASE)
    afile = write("plainfile", "x")
    cases = {
        "long name": WORK / ("n" * 300), "long path": WORK / "/".join(["d" * 200] * 25),
        "under a file": afile / "out", "proc": Path("/proc/studio-out"), "sys": Path("/sys/studio-out"),
        "empty": Path(""), "name at 240 bytes": WORK / ("m" * 240),
        "dev null": Path("/dev/null"),
    }
    for name, out in cases.items():
        start = time.perf_counter()
        rc, _, err = cli(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(out),
                          "--data", "digits", "--finetune-epochs", "1"])
        ok, detail = one_line_error(rc, err)
        early = "[finetune]" not in err  # refused before the run
        record(cat, f"compress --out {name}", ok and early, detail + f" early={early}")
        if name in ("empty", "dev null"):
            continue  # `.onnx` and /dev/null.onnx are ordinary file names
        rc, _, err = cli(["export", "sample:digits-cnn", "--format", "onnx", "--out", str(out) + ".onnx"])
        ok, detail = one_line_error(rc, err)
        record(cat, f"export --out {name}", ok, detail)
    (WORK / "adir.onnx").mkdir(exist_ok=True)
    rc, _, err = cli(["export", "sample:digits-cnn", "--format", "onnx", "--out", str(WORK / "adir.onnx"), "--force"])
    record(cat, "export --out an existing folder", one_line_error(rc, err)[0], err[-200:])
    for name, argv in {
        "recipe is a folder": ["compress", "sample:digits-cnn", "--recipe", str(WORK), "--out", str(WORK / "x1")],
        "recipe missing": ["compress", "sample:digits-cnn", "--recipe", str(WORK / "none.yaml"), "--out", str(WORK / "x2")],
        "recipe binary": ["compress", "sample:digits-cnn", "--recipe", "/bin/sh", "--out", str(WORK / "x3")],
        "recipe /dev/zero": ["compress", "sample:digits-cnn", "--recipe", "/dev/zero", "--out", str(WORK / "x4")],
        "model is /dev/null": ["inspect", "/dev/null"], "model is a folder of junk": ["inspect", str(WORK)],
        "weights missing": ["inspect", factory("plain"), "--weights", str(WORK / "none.pt")],
        "weights on a sample": ["inspect", "sample:digits-cnn", "--weights", str(afile)],
        "long model name": ["inspect", "m" * 5000 + ".pt"], "nul in path": ["inspect", "a\x00b.pt"],
        "data is a folder for tensors": ["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out",
                                         str(WORK / "x5"), "--data", f"tensors:{WORK}"],
    }.items():
        rc, _, err = cli(argv, timeout=60)
        ok, detail = one_line_error(rc, err)
        record(cat, name, ok, detail)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--fuzz", type=int, default=300)
    args = parser.parse_args()
    steps = {"models": bad_models, "fuzz": lambda: recipe_fuzz(args.fuzz), "recipes": recipes_cli,
             "data": data_specs, "compress-int": lambda: interrupts("compress"),
             "export-int": lambda: interrupts("export"), "overwrite": overwrite, "json": json_purity, "paths": paths}
    for name, step in steps.items():
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        try:
            step()
        except BaseException as exc:  # a probe bug must not hide the other categories
            record(name, "probe crashed", False, traceback.format_exc()[-500:])
        print(f"# {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(json.dumps(RESULTS, indent=1))


if __name__ == "__main__":
    main()
