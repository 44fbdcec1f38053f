"""Jobs in a child process: the same events as in-process, a native crash becomes a clear error
naming the stage (and the parent carries on), cancel ends every stage within a second, and
the caller's original model is never touched."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from studio.core.base.cancel import Cancelled, CancelToken
from studio.core.base.events import Finished, LayerDone, Metric, Progress, RunCancelled, StageStarted
from studio.core.base.resources import resource
from studio.core.model.loaders import LoadRequest
from studio.core.pipelines.export.request import ExportRequest
from studio.core.pipelines.jobs import ExportJob, LrJob, ProcessJobRunner, RunJob, SavedRun, SweepJob, WorkerCrashed
from studio.core.pipelines.opening import load_model
from studio.core.pipelines.sensitivity import SweepSpec
from studio.core.plan import CompressionPlan

MODELS = Path(__file__).with_name("process_models.py")
DIGITS = LoadRequest("sample:digits-cnn")
FINETUNE = {"epochs": 1, "distill": True, "max_steps": 6}


def digits_plan() -> dict:
    return CompressionPlan.load(resource("recipes", "digits-prune-quantize.yaml")).to_dict()


def factory(name: str) -> LoadRequest:
    return LoadRequest(f"{MODELS}:{name}")


def key(event: object) -> tuple:
    """What must match between the two processes (not timings or ETA texts)."""
    if isinstance(event, StageStarted):
        return ("stage", event.name)
    if isinstance(event, Metric):
        return ("metric", event.step, event.name)
    if isinstance(event, LayerDone):
        return ("layer", event.change)
    if isinstance(event, Progress):
        return (type(event).__name__, event.step, event.total)
    return (type(event).__name__,)


def test_run_streams_the_in_process_sequence_and_the_model_comes_back_as_a_folder(runner):
    job = RunJob(DIGITS, digits_plan(), "digits", FINETUNE)
    local = list(job.events(CancelToken()))
    remote = list(runner.events(job))
    assert [key(e) for e in remote] == [key(e) for e in local]
    assert isinstance(remote[-1], Finished) and isinstance(remote[-1].result, SavedRun)
    saved, expected = remote[-1].result, local[-1].result
    assert saved.report.after.params == expected.report.after.params
    assert saved.report.after.accuracy == pytest.approx(expected.report.after.accuracy, abs=0.01)
    assert [c.name for c in saved.changes] == [c.name for c in expected.compression.changes]

    original = load_model(DIGITS)
    before = {k: v.clone() for k, v in original.module.state_dict().items()}
    reopened = saved.open(original)
    assert reopened.module is not original.module
    assert sum(p.numel() for p in reopened.module.parameters()) == saved.report.after.params
    for name, value in original.module.state_dict().items():  # the caller's model is untouched
        assert torch.equal(value, before[name]), name
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(reopened.module(x), expected.model(x), atol=1e-4, rtol=1e-4)


def test_the_learning_rate_test_runs_in_the_child_as_in_process(runner):
    job = LrJob(DIGITS, digits_plan(), "digits", {"distill": True}, steps=12)
    local = list(job.events(CancelToken()))
    remote = list(runner.events(job))
    assert [key(e) for e in remote] == [key(e) for e in local]
    assert remote[-1].result.lrs == local[-1].result.lrs
    assert remote[-1].result.losses == pytest.approx(local[-1].result.losses, rel=1e-4)


def test_saved_run_copies_atomically_and_refuses_to_overwrite(runner, tmp_path):
    job = RunJob(factory("small"), {"rules": []}, None, {})
    saved = [e for e in runner.events(job) if isinstance(e, Finished)][0].result
    out = saved.save_to(tmp_path / "kept")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in saved.folder.iterdir())
    with pytest.raises(Exception, match="already exists"):
        saved.save_to(out)


@pytest.mark.parametrize("source, stage, where", [("AbortNet", "finetune", "fine-tuning"),
                                                  ("abort_on_load", "open", "opening the model")])
def test_a_native_crash_in_the_child_is_an_error_naming_the_stage(runner, source, stage, where):
    job = RunJob(factory(source), {"rules": []}, "random:64", {"epochs": 1, "distill": True})
    with pytest.raises(WorkerCrashed) as caught:
        list(runner.events(job))
    assert caught.value.stage == stage
    assert where in str(caught.value) and "SIGABRT" in str(caught.value)
    # the parent carries on: the next job gets a fresh worker
    events = list(runner.events(RunJob(factory("small"), {"rules": []}, None, {})))
    assert isinstance(events[-1], Finished)


def _cancel_at(runner: ProcessJobRunner, job: object, stage: str) -> tuple[float, list[object]]:
    """Cancel when `stage` starts; seconds from the cancel until the job's generator has ended."""
    token, seen, clicked = CancelToken(), [], None
    try:
        for event in runner.events(job, token):
            seen.append(event)
            if clicked is None and isinstance(event, StageStarted) and event.name == stage:
                token.cancel()
                clicked = time.monotonic()
    except Cancelled:
        pass
    assert clicked is not None, f"stage {stage} never started: {[key(e) for e in seen]}"
    return time.monotonic() - clicked, seen


RUN_STAGES = ["open", "validate", "apply", "measure", "evaluate", "finetune", "latency"]


@pytest.mark.parametrize("stage", RUN_STAGES)
def test_cancel_ends_every_run_stage_within_a_second(runner, stage):
    job = RunJob(DIGITS, digits_plan(), "digits", {"epochs": 1, "distill": True})
    seconds, seen = _cancel_at(runner, job, stage)
    assert seconds <= 1.0
    # The last stage can end before the cancel lands (a fast machine, events batched every 20 ms):
    # then the run is simply done. Any earlier stage must end cancelled.
    assert stage == RUN_STAGES[-1] or not any(isinstance(e, Finished) for e in seen)


@pytest.mark.parametrize("stage", ["open", "sensitivity"])
def test_cancel_ends_every_sweep_stage_within_a_second(runner, stage, tmp_path):
    job = SweepJob(DIGITS, SweepSpec(techniques=("prune", "quantize"), samples=64), "digits", tmp_path / "cache")
    seconds, seen = _cancel_at(runner, job, stage)
    assert seconds <= 1.0
    assert not any(isinstance(e, Finished) for e in seen)


@pytest.mark.parametrize("stage", ["open", "prepare", "convert", "verify"])
def test_cancel_ends_every_export_stage_within_a_second(runner, stage, tmp_path):
    job = ExportJob(DIGITS, ExportRequest("onnx", tmp_path / "digits.onnx", samples=64), "digits")
    seconds, seen = _cancel_at(runner, job, stage)
    assert seconds <= 1.0
    assert not any(isinstance(e, Finished) for e in seen)


@pytest.mark.parametrize("source", ["sleep_on_load", "SleepNet"])
def test_cancel_inside_a_call_that_never_checks_stops_the_child(runner, source):
    """The child blocks where no cancel check runs (while opening; in a training step): it is
    terminated after the grace period, and the next job gets a fresh worker."""
    from tests.core.process_models import SLEEPING

    SLEEPING.unlink(missing_ok=True)
    token, clicked = CancelToken(), []

    def cancel_once_blocked() -> None:
        deadline = time.monotonic() + 120
        while not SLEEPING.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        clicked.append(time.monotonic())
        token.cancel()

    clicker = threading.Thread(target=cancel_once_blocked)
    clicker.start()
    job = RunJob(factory(source), {"rules": []}, "random:64", {"epochs": 1, "distill": True})
    seen = list(runner.events(job, token))
    ended = time.monotonic()
    clicker.join()
    assert SLEEPING.exists()
    assert ended - clicked[0] <= 1.0
    assert not any(isinstance(e, Finished) for e in seen)
    assert isinstance(seen[-1], RunCancelled) and seen[-1].stage == ("open" if source == "sleep_on_load" else "finetune")
    assert seen[-1].detail.endswith("; the original model is unchanged")
    events = list(runner.events(RunJob(factory("small"), {"rules": []}, None, {})))
    assert isinstance(events[-1], Finished)


def test_a_job_gets_every_core_but_the_window_s_unless_told(monkeypatch):
    from studio.core.pipelines.jobs import child

    monkeypatch.delenv("STUDIO_JOB_THREADS", raising=False)
    for cores, threads in ((1, 1), (2, 1), (8, 7)):
        monkeypatch.setattr(child.os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert child.job_threads() == threads
    monkeypatch.setenv("STUDIO_JOB_THREADS", "3")
    assert child.job_threads() == 3
    for junk in ("0", "-2", "many", ""):  # not a count: the default
        monkeypatch.setenv("STUDIO_JOB_THREADS", junk)
        assert child.job_threads() == 7
