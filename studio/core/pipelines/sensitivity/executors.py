"""Where cells run: in this process, in local worker processes (concurrent.futures, spawn) or
on Ray. Cells are independent; a task is one layer with the settings it still lacks, so a
worker records that layer's upstream outputs once for all of them. Scheduling is the pool's."""

from __future__ import annotations

import pickle
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterator

from studio.core.base.errors import StudioError
from studio.core.pipelines.sensitivity.result import SensitivityCell, SweepSetting

Task = tuple[str, tuple[SweepSetting, ...]]
_ENGINE: list[Any] = []  # the worker's engine, built once per process by _init


def _payload(loaded, batches, labels, fast: bool) -> bytes:
    try:
        return pickle.dumps((loaded, batches, labels, fast))
    except Exception as exc:
        raise StudioError(f"This model cannot be sent to worker processes ({type(exc).__name__}: {exc}); "
                          "run the sweep in-process.") from exc


def _build(payload: bytes, threads: int):
    import torch

    from studio.core.model.inspection import inspect_model
    from studio.core.pipelines.sensitivity.engine import CellEngine

    if threads:
        torch.set_num_threads(threads)
    loaded, batches, labels, fast = pickle.loads(payload)
    return CellEngine(loaded, batches, labels, inspect_model(loaded.module, loaded.input_spec), fast)


def _init(payload: bytes, threads: int) -> None:
    _ENGINE[:] = [_build(payload, threads)]


def _run_task(task: Task) -> list[dict]:
    name, settings = task
    return [c.to_dict() for c in _ENGINE[0].layer_cells(name, settings)]


def run_processes(payload: bytes, tasks: list[Task], workers: int,
                  cancelled: Callable[[], bool]) -> Iterator[SensitivityCell]:
    """Yield cells as tasks finish; on cancel, pending tasks are dropped and workers stopped."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    threads = 1 if workers > 1 else 0
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init,
                               initargs=(payload, threads))
    try:
        pending = {pool.submit(_run_task, task) for task in tasks}
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                for data in future.result():
                    yield SensitivityCell.from_dict(data)
            if cancelled():
                return
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_ray(payload: bytes, tasks: list[Task], address: str, workers: int,
            cancelled: Callable[[], bool]) -> Iterator[SensitivityCell]:
    """Ray actors (one engine each) fed by Ray's ActorPool; `address` "local" starts a local Ray."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:
        raise StudioError("--ray needs Ray: pip install 'compression-studio[ray]'.") from exc
    started = not ray.is_initialized()
    if started:
        options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        try:
            if address == "local":
                ray.init(num_cpus=max(workers, 1), **options)
            else:
                ray.init(address=address, **options)
        except Exception as exc:
            raise StudioError(f"Could not start or join Ray at {address!r} ({type(exc).__name__}: {exc}).") from exc

    @ray.remote(num_cpus=1)
    class SweepWorker:
        def __init__(self, data: bytes) -> None:
            self.engine = _build(data, 1)

        def cells(self, task: Task) -> list[dict]:
            return [c.to_dict() for c in self.engine.layer_cells(*task)]

    ref = ray.put(payload)
    actors = [SweepWorker.remote(ref) for _ in range(max(workers, 1))]
    try:
        pool = ActorPool(actors)
        for result in pool.map_unordered(lambda actor, task: actor.cells.remote(task), tasks):
            for data in result:
                yield SensitivityCell.from_dict(data)
            if cancelled():
                return
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
