"""`sample:NAME` — the bundled, trained sample models (listing them needs no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from studio.core.base.errors import StudioError
from studio.core.model.input_spec import InputSpec
from studio.core.model.loaded_model import LoadedModel

if TYPE_CHECKING:  # the window lists samples before torch is imported
    from torch import nn


@dataclass(frozen=True)
class Sample:
    name: str
    description: str
    input_spec: str
    build: Callable[[], nn.Module]
    data: str


def _digits() -> nn.Module:
    from studio.core.model.samples.digits_cnn import build_digits_cnn

    return build_digits_cnn()


def _minilm() -> nn.Module:
    from studio.core.model.samples.minilm_sentiment import build_minilm_sentiment

    return build_minilm_sentiment()


SAMPLES: dict[str, Sample] = {
    s.name: s
    for s in (
        Sample("digits-cnn", "Small CNN (BatchNorm, depthwise, residual) trained on scikit-learn's 8x8 digits",
               "1x1x8x8 float32", _digits, "digits"),
        Sample("minilm-sentiment", "all-MiniLM-L6-v2 (BERT, 22.7M params) + sentiment head on Rotten Tomatoes",
               "input_ids 1x128 int64 [0,30522); attention_mask 1x128 int64 [1,2)", _minilm, "rotten-tomatoes"),
    )
}


def load_sample(name: str) -> LoadedModel:
    sample = SAMPLES.get(name)
    if sample is None:
        raise StudioError(f"No sample called {name!r}; available: "
                          + ", ".join(f"sample:{n}" for n in SAMPLES) + ".")
    return LoadedModel(
        module=sample.build(), name=f"sample:{name}", source=f"sample:{name}", kind="sample",
        input_spec=InputSpec.parse(sample.input_spec), extras={"data": sample.data},
    )
