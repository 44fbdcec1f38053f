"""Plain-text layer table for `studio inspect` (the GUI shows the same tree)."""

from __future__ import annotations

from studio.core.loaded_model import LoadedModel
from studio.core.model_tree import ModelTree
from studio.core.units import format_bytes, format_count, format_flops, format_percent

_COLUMNS = (("Layer", 44, "<"), ("Type", 22, "<"), ("Params", 9, ">"), ("Share", 7, ">"),
            ("Size", 9, ">"), ("FLOPs", 13, ">"), ("Output", 18, "<"))


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _row(cells: tuple[str, ...]) -> str:
    return "  ".join(f"{_clip(c, w):{a}{w}}" for c, (_, w, a) in zip(cells, _COLUMNS)).rstrip()


def layer_table(loaded: LoadedModel, tree: ModelTree, max_depth: int | None = None) -> str:
    lines = [
        f"Model   {loaded.name}  ({loaded.kind}, {loaded.source})",
        f"Input   {tree.input_spec}",
        f"Total   {format_count(tree.total_params)} params ({tree.total_params:,}) · "
        f"{format_bytes(tree.total_bytes)} · {format_flops(tree.total_flops)} · {len(tree)} modules",
    ]
    lines += [f"Note    {note}" for note in tree.notes]
    lines += ["", _row(tuple(name for name, _, _ in _COLUMNS))]
    lines.append("  ".join("-" * w for _, w, _ in _COLUMNS))
    for node in tree.nodes():
        if max_depth is not None and node.depth > max_depth:
            continue
        label = "  " * node.depth + node.short_name + (" *" if node.shared else "")
        lines.append(_row((label, node.type, format_count(node.total_params), format_percent(node.share),
                           format_bytes(node.bytes), format_flops(node.flops), node.output_shape)))
    if any(node.shared for node in tree.nodes()):
        lines.append("\n* shares (ties) parameters with another layer; each parameter is counted once.")
    return "\n".join(lines)
