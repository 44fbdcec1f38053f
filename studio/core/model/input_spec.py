"""Example-input description ("1x1x8x8 float32", "input_ids 1x128 int64; ...") used for
FLOPs, shapes and export; pure text parsing here, tensors built lazily with torch."""

from __future__ import annotations

import re
import math
from dataclasses import dataclass, replace
from typing import Any

from studio.core.base.errors import InputSpecError

DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
_SHAPE = re.compile(r"^\d+(?:[x,]\d+)*$")
MAX_DIMS = 8
MAX_ELEMENTS = 2**27  # per input: 512 MiB of float32; larger example inputs exhaust memory in inspection
_INT_RANGE = {"int64": (-2**63, 2**63 - 1), "int32": (-2**31, 2**31 - 1), "int16": (-2**15, 2**15 - 1),
              "int8": (-128, 127), "uint8": (0, 255), "bool": (0, 1)}


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

    def __post_init__(self) -> None:
        """Every spec is sane however it was built: a bad one fails here, with a sentence, and
        never later as an allocation error or an overflow inside torch."""
        where = f"input {self.name!r}"
        if not 1 <= len(self.shape) <= MAX_DIMS:
            raise InputSpecError(f"{where}: {len(self.shape)} dimensions; use 1 to {MAX_DIMS}.")
        if any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in self.shape):
            raise InputSpecError(f"{where}: every dimension must be a positive integer, got {self.shape}.")
        elements = math.prod(self.shape)
        if elements > MAX_ELEMENTS:
            raise InputSpecError(f"{where}: {'x'.join(map(str, self.shape))} is {elements:.3g} values; an example "
                                 f"input is limited to {MAX_ELEMENTS:,} (use a smaller batch or size).")
        if self.is_integer:
            low = 0 if self.low is None else self.low
            high = 2 if self.high is None else self.high
            if low >= high:
                raise InputSpecError(f"{where}: the value range [{low},{high}) is empty; write [low,high) "
                                     "with low < high, e.g. [0,30522).")
            lo, hi = _INT_RANGE.get(self.dtype, _INT_RANGE["int64"])
            top = min(hi + 1, 2**63 - 1)  # the exclusive bound itself must fit torch's int64
            if low < lo or high > top:
                raise InputSpecError(f"{where}: the value range [{low},{high}) does not fit {self.dtype} "
                                     f"(at most [{lo},{top})).")


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
    if len(part) > 500:
        raise InputSpecError(f"The input spec entry {part[:60]!r}... is {len(part):,} characters long; "
                             "write e.g. '1x3x224x224 float32'.")
    bounds = re.search(r"\[(\-?\d*)\s*,\s*(\-?\d*)\)\s*$", part)
    if bounds:
        if max(len(bounds.group(1)), len(bounds.group(2))) > 20:
            raise InputSpecError(f"The value range in {part!r} overflows 64-bit integers.")
        low = int(bounds.group(1)) if bounds.group(1).lstrip("-") else None
        high = int(bounds.group(2)) if bounds.group(2).lstrip("-") else None
        part = part[: bounds.start()].strip()
    tokens = part.replace(":", " ").split()
    name = None
    if tokens and not _SHAPE.match(tokens[0]) and not tokens[0][0].isdigit():
        name = tokens.pop(0)
        if not name.isidentifier():
            raise InputSpecError(f"Input name {name!r} is not an identifier (entry {part!r}).")
    if not tokens or not _SHAPE.match(tokens[0]):
        raise InputSpecError(f"Cannot read a shape in {part!r}; write e.g. '1x3x224x224 float32'.")
    dims = re.split(r"[x,]", tokens.pop(0))
    if any(len(d) > 12 for d in dims):
        raise InputSpecError(f"A dimension in {part!r} is far too large.")
    shape = tuple(int(d) for d in dims)
    if any(d <= 0 for d in shape):
        raise InputSpecError(f"Every dimension must be positive, got {shape} in {part!r}.")
    dtype = tokens.pop(0) if tokens else "float32"
    _check_dtype(dtype)
    if tokens:
        raise InputSpecError(f"Unexpected text {' '.join(tokens)!r} in input spec entry {part!r}.")
    default_name = "input" if index == 0 else f"input_{index}"
    return TensorSpec(name or default_name, shape, dtype, low, high), name is not None
