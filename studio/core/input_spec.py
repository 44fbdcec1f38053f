"""Example-input description ("1x1x8x8 float32", "input_ids 1x128 int64; ...") used for
FLOPs, shapes and export; pure text parsing here, tensors built lazily with torch."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from studio.core.errors import InputSpecError

DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
_SHAPE = re.compile(r"^\d+(?:[x,]\d+)*$")


@dataclass(frozen=True)
class TensorSpec:
    """One example input. Integer inputs draw values from [low, high) (token ids < vocab)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    low: int | None = None
    high: int | None = None

    def __str__(self) -> str:
        text = f"{self.name} {'x'.join(map(str, self.shape))} {self.dtype}"
        if self.low is not None or self.high is not None:
            text += f" [{self.low or 0},{self.high if self.high is not None else ''})"
        return text

    @property
    def is_integer(self) -> bool:
        return self.dtype.startswith(("int", "uint")) or self.dtype == "bool"


@dataclass(frozen=True)
class InputSpec:
    """Inputs passed positionally (plain modules) or by name (`keyword`, e.g. HF models)."""

    tensors: tuple[TensorSpec, ...]
    keyword: bool = False

    def __str__(self) -> str:
        """Round-trips through `parse`: positional specs print without names."""
        if self.keyword:
            return "; ".join(str(t) for t in self.tensors)
        return "; ".join(str(t).split(" ", 1)[1] for t in self.tensors)

    @classmethod
    def parse(cls, text: str, *, keyword: bool | None = None) -> InputSpec:
        """Parse `[name] SHAPE [dtype] [[low,high)]` entries separated by ';'.

        Named entries make a keyword spec unless `keyword` says otherwise.
        """
        parts = [p.strip() for p in text.split(";") if p.strip()]
        if not parts:
            raise InputSpecError("The input spec is empty; write e.g. '1x3x224x224 float32'.")
        tensors = []
        named = False
        for index, part in enumerate(parts):
            spec, was_named = _parse_entry(part, index)
            named = named or was_named
            tensors.append(spec)
        names = [t.name for t in tensors]
        if len(set(names)) != len(names):
            raise InputSpecError(f"Input names must be unique, got {', '.join(names)}.")
        return cls(tuple(tensors), keyword=named if keyword is None else keyword)

    @classmethod
    def from_shape(cls, shape: str, dtype: str = "float32") -> InputSpec:
        """Build a single positional input from the CLI's `--input-shape 1,3,224,224`."""
        return cls.parse(f"{shape.replace(',', 'x')} {dtype}", keyword=False)

    def with_dtype(self, dtype: str) -> InputSpec:
        """Apply `--input-dtype` to every input."""
        _check_dtype(dtype)
        return replace(self, tensors=tuple(replace(t, dtype=dtype) for t in self.tensors))

    def make_inputs(self, seed: int = 0) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Deterministic example tensors: (args, kwargs) ready for `module(*args, **kwargs)`."""
        import torch

        gen = torch.Generator().manual_seed(seed)
        values = []
        for t in self.tensors:
            dtype = getattr(torch, t.dtype)
            if t.is_integer:
                low = 0 if t.low is None else t.low
                high = 2 if t.high is None else t.high
                values.append(torch.randint(low, high, t.shape, generator=gen).to(dtype))
            else:
                values.append(torch.randn(t.shape, generator=gen).to(dtype))
        if self.keyword:
            return (), {t.name: v for t, v in zip(self.tensors, values)}
        return tuple(values), {}


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise InputSpecError(f"Unknown input dtype {dtype!r}; use one of {', '.join(DTYPES)}.")


def _parse_entry(part: str, index: int) -> tuple[TensorSpec, bool]:
    low = high = None
    bounds = re.search(r"\[(\-?\d*)\s*,\s*(\-?\d*)\)\s*$", part)
    if bounds:
        low = int(bounds.group(1)) if bounds.group(1) else None
        high = int(bounds.group(2)) if bounds.group(2) else None
        part = part[: bounds.start()].strip()
    tokens = part.replace(":", " ").split()
    name = None
    if tokens and not _SHAPE.match(tokens[0]) and not tokens[0][0].isdigit():
        name = tokens.pop(0)
        if not name.isidentifier():
            raise InputSpecError(f"Input name {name!r} is not an identifier (entry {part!r}).")
    if not tokens or not _SHAPE.match(tokens[0]):
        raise InputSpecError(f"Cannot read a shape in {part!r}; write e.g. '1x3x224x224 float32'.")
    shape = tuple(int(d) for d in re.split(r"[x,]", tokens.pop(0)))
    if any(d <= 0 for d in shape):
        raise InputSpecError(f"Every dimension must be positive, got {shape} in {part!r}.")
    dtype = tokens.pop(0) if tokens else "float32"
    _check_dtype(dtype)
    if tokens:
        raise InputSpecError(f"Unexpected text {' '.join(tokens)!r} in input spec entry {part!r}.")
    default_name = "input" if index == 0 else f"input_{index}"
    return TensorSpec(name or default_name, shape, dtype, low, high), name is not None
