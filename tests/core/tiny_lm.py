"""A tiny Llama folder for the causal-LM tests: random weights and a word-level tokenizer trained
on the shipped public-domain text (offline; no hub)."""

from __future__ import annotations

from pathlib import Path

import torch

from studio.core.base.resources import resource

TEXT = resource("data", "pride_and_prejudice_ch1.txt")


def save_tiny_llama(folder: Path, hidden: int = 64, intermediate: int = 128) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train([str(TEXT)], trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder
