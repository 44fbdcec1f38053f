"""Pure composite describing where a model's parameters, bytes and compute live.

No torch import: the GUI adapts this tree directly and tests compare it with
independent computations. Built by `studio.core.model.inspection.inspect_model`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from studio.core.base.units import format_count, format_percent

LAYER_FIELDS = (
    "name", "type", "params", "total_params", "trainable_params", "bytes", "bytes_by_dtype",
    "share", "flops", "input_shape", "output_shape", "sparsity", "zero_params", "shared", "depth",
)

SPARSITY_UNKNOWN = "unknown (no weights)"


@dataclass(eq=False)
class LayerNode:
    """One module. `params` is its own; totals, bytes, FLOPs and sparsity cover its subtree.

    Parameters tied between modules count once per subtree and set `shared`. `sparsity` and
    `zero_params` are None (unknown) when the subtree holds a weightless (meta) parameter.
    """

    name: str
    type: str
    depth: int
    params: int = 0
    total_params: int = 0
    trainable_params: int = 0
    bytes: int = 0
    bytes_by_dtype: dict[str, int] = field(default_factory=dict)
    share: float = 0.0
    flops: int = 0
    input_shape: str = ""
    output_shape: str = ""
    sparsity: float | None = 0.0
    zero_params: int | None = 0
    shared: bool = False
    children: list[LayerNode] = field(default_factory=list)
    parent: LayerNode | None = field(default=None, repr=False)

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1] if self.name else "(model)"

    def row(self) -> int:
        """Index among the parent's children (the Qt adapter needs it)."""
        cached = getattr(self, "_row", None)
        if cached is not None:
            return cached
        return self.parent.children.index(self) if self.parent else 0

    def walk(self) -> Iterator[LayerNode]:
        """Pre-order traversal without recursion (deep models must not hit the limit)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in LAYER_FIELDS}

    def sparsity_text(self, gap: str = " ") -> str:
        """'12.5% (1.2 k zeros)'; 'unknown (no weights)' for a weightless subtree, whose
        zeros were never counted (not 0)."""
        if self.sparsity is None or self.zero_params is None:
            return SPARSITY_UNKNOWN
        return f"{format_percent(self.sparsity)}{gap}({format_count(self.zero_params)} zeros)"


@dataclass(eq=False)
class ModelTree:
    """The inspected model: its root node plus model-wide notes."""

    root: LayerNode
    input_spec: str = ""
    notes: tuple[str, ...] = ()
    _by_name: dict[str, LayerNode] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for node in self.root.walk():
            self._by_name[node.name] = node
        # `row()` is O(siblings); cache positions for models with very wide modules.
        for node in self._by_name.values():
            for index, child in enumerate(node.children):
                child._row = index  # type: ignore[attr-defined]

    @property
    def total_params(self) -> int:
        return self.root.total_params

    @property
    def total_bytes(self) -> int:
        return self.root.bytes

    @property
    def total_flops(self) -> int:
        return self.root.flops

    def __len__(self) -> int:
        return len(self._by_name)

    def __getitem__(self, name: str) -> LayerNode:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def nodes(self) -> Iterator[LayerNode]:
        return self.root.walk()

    def to_dict(self) -> dict[str, Any]:
        """The stable `studio inspect --json` schema (documented in the README)."""
        return {
            "total_params": self.total_params,
            "total_bytes": self.total_bytes,
            "total_flops": self.total_flops,
            "input_spec": self.input_spec,
            "notes": list(self.notes),
            "layers": [node.to_dict() for node in self.nodes()],
        }
