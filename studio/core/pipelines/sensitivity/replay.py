"""Prefix reuse: outputs of the module calls that finish before a layer starts cannot depend
on that layer, so they are recorded once and replayed, and each cell recomputes only what
runs from the changed layer on.

Works on any eager model whose call order does not depend on the data (shared modules, residual
adds and transformers included): calls are keyed by (module, n-th call in the forward). The hooks are global ones, filtered
to this model: hooks on the modules themselves would change code paths that check for them
(PyTorch's fused TransformerEncoderLayer does). Where
the layer is never called as a module (its weight read by its parent), the order differs
between batches, or the model is TorchScript, a layer falls back to a full forward.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._pytree import tree_map

Call = tuple[int, int]  # (module id, n-th call in one forward)


class _Stop(BaseException):
    """Ends a recording forward where the changed layer starts (BaseException: not swallowed)."""


def _clone(value: Any) -> Any:
    return tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, value)


class PrefixReplay:
    """Record once per layer (in call order), then run forwards that skip everything upstream of it."""

    def __init__(self, model: nn.Module, batches: list[tuple[tuple, dict]]) -> None:
        self.model = model
        self.batches = batches
        self.modules = {id(m): m for m in model.modules()}
        self.enabled = isinstance(model, nn.Module) and not isinstance(model, torch.jit.ScriptModule)
        self._counts: dict[int, int] = {}
        self._starts: list[Call] = []          # call order of one traced forward
        self._span: dict[Call, list[Call]] = {}  # calls nested inside each call
        self._ends: dict[Call, int] = {}       # position in _starts when each call ended
        self._memo: list[dict[Call, Any]] = []  # per batch: maximal upstream calls → outputs
        self._keys: set[Call] = set()
        self._record: set[Call] = set()
        self._layer: int | None = None
        self._recording = False
        self._handles: list = []
        if self.enabled:
            self._trace()

    # --- hooks ---------------------------------------------------------------------------
    def _pre(self, module: nn.Module, args: Any) -> None:
        if id(module) not in self.modules:
            return
        key = (id(module), self._counts.get(id(module), 0))
        self._counts[id(module)] = key[1] + 1
        if self._recording and id(module) == self._layer:
            raise _Stop()

    def _wrap(self, module: nn.Module) -> None:
        original = type(module).forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            key = (id(module), self._counts[id(module)] - 1)
            memo = self._batch_memo
            if key in memo:
                for inner in self._span[key]:  # the skipped nested calls still count
                    self._counts[inner[0]] = max(self._counts.get(inner[0], 0), inner[1] + 1)
                return _clone(memo[key])
            out = original(module, *args, **kwargs)
            if key in self._record:
                self._store[key] = _clone(out)
            return out

        module.forward = forward  # instance attribute; removed in close()

    # --- tracing -------------------------------------------------------------------------
    def _trace(self) -> None:
        """One forward on the first batch gives the call order and nesting."""
        stack: list[Call] = []

        def pre(module, args):
            if id(module) not in self.modules:
                return
            key = (id(module), self._counts.get(id(module), 0))
            self._counts[id(module)] = key[1] + 1
            for outer in stack:
                self._span[outer].append(key)
            stack.append(key)
            self._span[key] = []
            self._starts.append(key)

        def post(module, args, output):
            if id(module) in self.modules:
                self._ends[stack.pop()] = len(self._starts)

        handles = [register_module_forward_pre_hook(pre), register_module_forward_hook(post)]
        try:
            args, kwargs = self.batches[0]
            with torch.inference_mode():
                self.model(*args, **kwargs)
        except Exception:
            self.enabled = False
        finally:
            for h in handles:
                h.remove()
            self._counts = {}

    def upstream(self, layer: nn.Module) -> set[Call]:
        """Maximal calls that end before `layer` first starts."""
        first = next((i for i, c in enumerate(self._starts) if c[0] == id(layer)), None)
        if first is None:
            return set()
        done = {c for c in self._starts[:first] if self._ends.get(c, 1 << 60) <= first}
        nested = {inner for c in done for inner in self._span[c]}
        return done - nested

    # --- per layer -----------------------------------------------------------------------
    def prepare(self, layer: nn.Module, cancel: Callable[[], None] = lambda: None) -> bool:
        """Record the upstream outputs of `layer` for every batch; False means: use full forwards."""
        self.release()
        keys = self.upstream(layer) if self.enabled else set()
        if not keys:
            return False
        self._install(keys, record=True)
        self._layer = id(layer)
        memos = []
        try:
            for batch_memo, (args, kwargs) in zip(self._memo_or_empty(), self.batches):
                cancel()
                self._store: dict[Call, Any] = {}
                self._batch_memo = batch_memo
                self._counts = {}
                self._recording = True
                try:
                    with torch.inference_mode():
                        self.model(*args, **kwargs)
                    return self._fail()  # the layer was not reached in this batch
                except _Stop:
                    pass
                if set(self._store) | (set(batch_memo) & keys) != keys:
                    return self._fail()  # another call order in this batch
                memos.append({**{k: v for k, v in batch_memo.items() if k in keys}, **self._store})
        finally:
            self._recording = False
            self._store = {}
        self._memo, self._keys = memos, keys
        self._record = set()
        return True

    def _memo_or_empty(self) -> list[dict[Call, Any]]:
        return self._memo if len(self._memo) == len(self.batches) else [{} for _ in self.batches]

    def _fail(self) -> bool:
        self.release()
        self._memo = []
        return False

    def _install(self, keys: set[Call], record: bool) -> None:
        wanted = {k[0] for k in keys} | {k[0] for k in self._keys}
        self._record = set(keys) if record else set()
        for handle in self._handles:
            handle.remove()
        self._handles = [register_module_forward_pre_hook(self._pre)]
        for mid in wanted:
            if "forward" not in self.modules[mid].__dict__:
                self._wrap(self.modules[mid])
        self._batch_memo = {}
        self._store = {}

    def run(self, batch: int) -> Any:
        """One forward of batch `batch` with the upstream calls replayed."""
        args, kwargs = self.batches[batch]
        self._batch_memo = self._memo[batch]
        self._counts = {}
        with torch.inference_mode():
            return self.model(*args, **kwargs)

    def release(self) -> None:
        """Remove hooks and wrappers (the memo of the last layer stays for the next recording)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for module in self.modules.values():
            module.__dict__.pop("forward", None)
        self._batch_memo = {}

    def close(self) -> None:
        self.release()
        self._memo, self._keys = [], set()
