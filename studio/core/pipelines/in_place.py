"""What compressing a model in place (`compress(owned=True)`, the CLI) needs besides the apply loop.

Releasing the replaced layers' memory: transformers maps a safetensors file into memory (one
private mapping of the whole file) and every weight is a view into it, so a replaced layer's
float weight, once freed, leaves its pages resident until the last weight of the file goes —
an in-place compression would then hold as much as a copy. `FilePages` records the targets'
weights that live in such a mapping and, once a weight's storage is freed (no tensor can read it
any more), tells the kernel to drop its pages (`madvise(MADV_DONTNEED)`); it keeps the mapping
alive meanwhile (one small tensor of it), so the address range cannot be reused under it.
Only file-backed private mappings are touched, never the allocator's memory; elsewhere
(no /proc/self/maps, no libc) it does nothing.

Latency: the original can no longer be timed interleaved with the compressed model, so its
batch-1 forwards are timed first and the compressed model's the same way afterwards. The
comparison is built as `latency.compare_latency` builds it (per-pair ratios, bootstrap interval,
the 5 % rule), but machine noise no longer hits both alike: the CLI's in-place runs only.

Returning freed heap memory: glibc keeps freed blocks below its dynamic mmap threshold (up to
32 MiB) in its arenas; a stage that interleaves transients with allocations that stay (the int4
kernel operands built on the first forward between activations) leaves the freed blocks
resident (measured on the 135 M LM: 164 MiB after the compressed model's fidelity forward, 43
MiB after its bytes). `trim_heap` (`malloc_trim(0)`) hands them back between stages."""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import functools
import mmap
import time
from typing import Any

import torch
from torch import nn

from studio.core.pipelines.latency import LatencyComparison, budgeted_runs, comparison_of

RUNS, WARMUP = 21, 3
MADV_DONTNEED = 4  # Linux


def _file_mappings() -> list[tuple[int, int]]:
    """(start, end) of this process's private mappings of regular files (sorted)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            lines = maps.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[1].endswith("p") and parts[5].startswith("/") and parts[4] != "0":
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, end))
    return sorted(out)


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _libc_function(name: str, argtypes: list[Any]) -> Any:
    """The C library's `name` (returning int), or None where there is no such library or function."""
    function = getattr(_libc(), name, None)
    if function is not None:
        function.argtypes, function.restype = argtypes, ctypes.c_int
    return function


def _madvise() -> Any:
    return _libc_function("madvise", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int])


class FilePages:
    """The file-mapped memory of `targets`' tensors, dropped as each tensor's storage is freed."""

    def __init__(self, model: nn.Module, targets: list[nn.Module]) -> None:
        from torch.multiprocessing.reductions import StorageWeakRef

        self._madvise = _madvise()
        mappings = _file_mappings() if self._madvise is not None else []
        starts = [start for start, _ in mappings]

        def mapping_of(storage: torch.UntypedStorage) -> int | None:
            ptr, size = storage.data_ptr(), storage.nbytes()
            index = bisect.bisect_right(starts, ptr) - 1
            return index if size and index >= 0 and ptr + size <= mappings[index][1] else None

        self._pending: list[tuple[Any, int, int]] = []  # (weak storage, first page, end of its last page)
        seen: set[int] = set()
        for module in targets:
            for tensor in (*module.parameters(), *module.buffers()):
                storage = tensor.untyped_storage()
                ptr = storage.data_ptr()
                if ptr in seen or mapping_of(storage) is None:
                    continue
                seen.add(ptr)
                first = -(-ptr // mmap.PAGESIZE) * mmap.PAGESIZE
                last = (ptr + storage.nbytes()) // mmap.PAGESIZE * mmap.PAGESIZE
                if last > first:
                    self._pending.append((StorageWeakRef(storage), first, last))
        # one storage per mapping that is no target keeps the mapping (its pages are not needed)
        self._anchors: list[torch.UntypedStorage] = []
        wanted = {bisect.bisect_right(starts, first) - 1 for _, first, _ in self._pending}
        for tensor in sorted((*model.parameters(), *model.buffers()), key=lambda t: t.untyped_storage().nbytes()):
            index = mapping_of(tensor.untyped_storage())
            if index in wanted and tensor.untyped_storage().data_ptr() not in seen:
                wanted.discard(index)
                self._anchors.append(tensor.untyped_storage())
        for module in targets:  # a mapping holding only targets: one of them stays (and is not released)
            for tensor in (*module.parameters(), *module.buffers()):
                if mapping_of(tensor.untyped_storage()) in wanted:
                    wanted.discard(mapping_of(tensor.untyped_storage()))
                    self._anchors.append(tensor.untyped_storage())
        self.released = 0

    def release_freed(self) -> int:
        """Drop the pages of every recorded storage no tensor holds any more; bytes released."""
        still, done = [], 0
        for weak, first, last in self._pending:
            if weak.expired():
                if self._madvise(first, last - first, MADV_DONTNEED) == 0:
                    done += last - first
            else:
                still.append((weak, first, last))
        self._pending = still
        self.released += done
        return done

    def close(self) -> int:
        """Release what is freed by now and let the mapping go; bytes released in all."""
        self.release_freed()
        self._pending, self._anchors = [], []
        return self.released


def trim_heap() -> None:
    """Give the allocator's free memory back to the system (glibc `malloc_trim(0)`); elsewhere a no-op."""
    trim = _libc_function("malloc_trim", [ctypes.c_size_t])
    if trim is not None:
        trim(0)


def forward_times(model: nn.Module, example: tuple[tuple[Any, ...], dict[str, Any]], runs: int = RUNS,
                  warmup: int = WARMUP, exact: bool = False) -> list[float]:
    """Milliseconds of batch-1 forwards after `warmup` untimed ones (eval mode, no grad): `runs`,
    or unless `exact` more (as `compare_latency` does) while they take under half its MIN_SECONDS."""
    args, kwargs = example
    model.eval()
    times: list[float] = []
    with torch.no_grad():
        while len(times) < runs + warmup:
            start = time.perf_counter()
            model(*args, **kwargs)
            times.append((time.perf_counter() - start) * 1000)
            if len(times) == warmup and not exact:
                runs = budgeted_runs(runs, 2 * times[-1])  # half of each pair: the compressed model's follow
    return times[warmup:]


def latency_after(before_ms: list[float], after: nn.Module, example: tuple[tuple[Any, ...], dict[str, Any]],
                  seed: int = 0) -> LatencyComparison:
    """The compressed model timed now against the original's times taken before compressing."""
    return comparison_of(before_ms, forward_times(after, example, runs=len(before_ms), exact=True), seed)
