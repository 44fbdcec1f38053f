"""Seeded recipe fuzzing: whatever the text, reading and validating a recipe ends in a plan or
in one StudioError — never another exception, never a hang, never an unbounded message.
A seeded generator (not hypothesis): the same 240 recipes every run, in bounded time."""

from __future__ import annotations

import json
import random
import signal
import time

import pytest
import yaml

from studio.cli.main import main, one_line
from studio.core.pipelines.compress import validate
from studio.core.base.errors import StudioError
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.plan import CompressionPlan

RECIPES = 240
THROUGH_CLI = 12
TECHNIQUES = {"prune": ["mode", "amount", "importance"], "quantize": ["dtype", "activations", "group_size", "per_channel"],
              "lowrank": ["method", "rank", "rank_fraction", "energy", "solver"], "sparsify": ["x"]}
GOOD = {"mode": ["unstructured", "structured", "2:4"], "amount": [0.3, 0.5], "importance": ["l1", "l2"],
        "dtype": ["int8", "int4", "fp16"], "activations": ["dynamic", "static", None], "group_size": [8, 32],
        "per_channel": [True, False], "method": ["svd", "tucker", "cp"], "rank": [2, 4], "rank_fraction": [0.5],
        "energy": [0.9], "solver": ["auto", "exact"], "x": [1]}
LAYERS = ["*", "classifier.1", "classifier.4", "features.1.0", "re:features\\.[01]\\.0", "classifier.*", "nothing",
          "re:(", "features.?.0", "re:(x+x+)+y", "x" * 3000]
ATTACKS = [
    "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e]\nrules: *f\n",
    "rules: &r [*r]\n", "rules: " + "[" * 3000 + "]" * 3000 + "\n", "settings: &s {a: *s}\n",
    '{"rules": ' + "[" * 5000 + "]" * 5000 + "}", "!!python/object/apply:os.system ['echo hi']\n", "\t\x00\xff",
    "rules:\n" + "  - {layers: '*', prune: {amount: 0.5}}\n" * 500, "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 400)),
    "version: !!binary aGk=\n", "rules: [{layers: 2020-01-01, prune: {}}]\n", "? [a]\n: b\n", "{1: 2}\n",
]


def _random_value(rng: random.Random):
    return rng.choice([None, True, False, 0, -1, 1, 1.5, 2**40, -2**70, float("nan"), float("inf"), "abc", "int8", "",
                       [], [1, 2], {}, {"a": 1}, "x" * 5000, "re:(", "*", 0.5, 3])


def fuzz_recipe(rng: random.Random) -> tuple[str, str]:
    """(text, format): a structural attack now and then, else a recipe with random fields."""
    if rng.random() < 0.08:
        text = rng.choice(ATTACKS)
        return text, "json" if text.startswith("{\"") else "yaml"
    rules = []
    for _ in range(rng.randint(0, 4)):
        rule: dict = {"layers": rng.choice(LAYERS) if rng.random() < 0.9 else _random_value(rng)}
        for technique in rng.sample(sorted(TECHNIQUES), rng.randint(0, 2)):
            if rng.random() < 0.2:
                rule[technique] = _random_value(rng)
                continue
            keys = rng.sample(TECHNIQUES[technique], rng.randint(0, len(TECHNIQUES[technique])))
            rule[technique] = {k: rng.choice(GOOD[k]) if rng.random() < 0.7 else _random_value(rng) for k in keys}
        rules.append(rule if rng.random() < 0.95 else _random_value(rng))
    recipe: dict = {"version": 1 if rng.random() < 0.9 else _random_value(rng),
                    "rules": rules if rng.random() < 0.95 else _random_value(rng)}
    if rng.random() < 0.2:
        recipe["settings"] = rng.choice([{"data": "digits"}, [1, 2], "x", {"data": 5}, {"finetune": 3}])
    if rng.random() < 0.3:
        return json.dumps(recipe, allow_nan=True), "json"
    return yaml.safe_dump(recipe), "yaml"


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


@pytest.fixture(scope="module")
def digits():
    return load_model(LoadRequest("sample:digits-cnn"))


def test_fuzzed_recipes_end_in_a_plan_or_one_studio_error(digits):
    rng = random.Random(15)
    previous = signal.signal(signal.SIGALRM, _alarm)
    outcomes = {"valid": 0, "refused": 0}
    started = time.perf_counter()
    try:
        for index in range(RECIPES):
            text, fmt = fuzz_recipe(rng)
            signal.alarm(20)  # a hang fails the test instead of stalling the suite
            try:
                validate(digits, CompressionPlan.loads(text, fmt))
                outcomes["valid"] += 1
            except StudioError as exc:
                outcomes["refused"] += 1
                message = one_line(exc)
                assert "\n" not in message and len(message) < 2100, (index, message[:300])
            except _Hang:
                pytest.fail(f"recipe #{index} hangs: {text[:200]!r}")
            except Exception as exc:  # noqa: BLE001 - exactly what the test hunts
                pytest.fail(f"recipe #{index} raised {type(exc).__name__}: {exc!s:.300} for {text[:200]!r}")
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert outcomes["valid"] >= 10 and outcomes["refused"] >= 100, outcomes  # the generator covers both
    assert time.perf_counter() - started < 120


def _valid(digits, text: str, fmt: str) -> bool:
    try:
        validate(digits, CompressionPlan.loads(text, fmt))
        return True
    except StudioError:
        return False


def test_fuzzed_recipes_through_the_cli(capsys, tmp_path, digits):
    """Exit 0 or exit 2 with one line; nothing written on failure."""
    rng = random.Random(1515)
    candidates = [fuzz_recipe(rng) for _ in range(100)]
    valid = [c for c in candidates if _valid(digits, *c)]
    refused = [c for c in candidates if c not in valid]
    chosen = refused[:THROUGH_CLI] + valid[:1]  # refusals are fast; one recipe runs end to end
    for index, (text, fmt) in enumerate(chosen):
        recipe = tmp_path / f"r{index}.{fmt}"
        recipe.write_text(text)
        out = tmp_path / f"out{index}"
        code = main(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(out), "--json"])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        if code == 0:
            assert (out / "studio.json").is_file() and json.loads(captured.out)["recipe"]
        else:
            assert code == 2, (code, captured.err[-500:])
            lines = [line for line in captured.err.splitlines() if line.startswith("studio:")]
            assert len(lines) == 1 and lines[0].startswith("studio: error: ")
            assert not out.exists()
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
