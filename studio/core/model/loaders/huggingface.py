"""Hugging Face model folders (config.json + safetensors/bin), offline, no remote code
unless the user asks for it."""

from __future__ import annotations

import json
from pathlib import Path

from studio.core.base.errors import StudioError, UntrustedCodeError
from studio.core.base.logs import quiet_transformers
from studio.core.model.input_spec import InputSpec
from studio.core.model.loaded_model import LoadedModel


def hf_input_spec(config, main_input: str, seq_len: int = 128) -> InputSpec:
    """Example inputs a model of this config accepts (token ids stay below the vocab size)."""
    if main_input == "pixel_values":
        size = getattr(config, "image_size", 224)
        size = size if isinstance(size, int) else size[0]
        return InputSpec.parse(f"pixel_values 1x{getattr(config, 'num_channels', 3)}x{size}x{size} float32")
    if main_input == "input_values":
        return InputSpec.parse("input_values 1x16000 float32")
    length = min(seq_len, getattr(config, "max_position_embeddings", seq_len) or seq_len)
    vocab = getattr(config, "vocab_size", 2)
    return InputSpec.parse(f"input_ids 1x{length} int64 [0,{vocab}); attention_mask 1x{length} int64 [1,2)")


WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "*.bin.index.json", "*.pt",
                   "*.pth", "tf_model.h5", "flax_model.msgpack")
META_NOTE = ("Built from config.json without weights (meta device): parameters, bytes, FLOPs and shapes are exact; "
             "compressing, running or exporting it needs the weights.")


def has_weights(path: Path) -> bool:
    """Whether a model folder holds any weights file (else it can only open on the meta device)."""
    return any(next(path.glob(pattern), None) is not None for pattern in WEIGHT_PATTERNS)


def load_hf_directory(path: Path, trust_remote_code: bool = False, meta: bool = False) -> LoadedModel:
    """`meta=True`, or a folder holding only a config, builds the model on the meta device:
    the full structure at no memory cost (a 7 B model opens in seconds)."""
    if not any(path.iterdir()):
        raise StudioError(f"{path}: the folder is empty.")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise StudioError(f"{path}: not a Hugging Face model folder (no config.json).")
    try:
        raw = json.loads(config_file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise StudioError(f"{config_file}: not valid JSON ({exc}).") from exc
    if raw.get("auto_map") and not trust_remote_code:
        raise UntrustedCodeError(f"{path} needs custom code shipped in the folder (auto_map). The studio never runs "
                                 "it unless you ask: --trust-remote-code (window: confirm the prompt).",
                                 option="trust_remote_code")
    import transformers

    from studio.core.model.loaders.hf_imports import import_model_code

    quiet_transformers()
    import_model_code(raw)
    try:
        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True,
                                                        trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise StudioError(f"{config_file}: not a usable model config ({exc}).") from exc
    arch = (getattr(config, "architectures", None) or [None])[0]
    model_class = getattr(transformers, arch, None) if arch else None
    if meta or not has_weights(path):
        return _load_meta(path, config, model_class, trust_remote_code)
    try:
        if model_class is not None:
            module = model_class.from_pretrained(path, local_files_only=True)
        else:
            module = transformers.AutoModel.from_pretrained(path, local_files_only=True,
                                                            trust_remote_code=trust_remote_code)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudioError(f"{path}: could not load the weights ({first}).") from exc
    spec = hf_input_spec(config, getattr(module, "main_input_name", "input_ids"))
    return LoadedModel(module=module, name=path.name, source=str(path), kind="huggingface",
                       input_spec=spec, extras={"model_type": config.model_type})


def _load_meta(path: Path, config, model_class, trust_remote_code: bool) -> LoadedModel:
    import torch
    import transformers

    try:
        with torch.device("meta"):
            if model_class is not None:
                module = model_class._from_config(config)
            else:
                module = transformers.AutoModel.from_config(config, trust_remote_code=trust_remote_code)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudioError(f"{path}: could not build the model from its config ({first}).") from exc
    spec = hf_input_spec(config, getattr(module, "main_input_name", "input_ids"))
    return LoadedModel(module=module, name=path.name, source=str(path), kind="huggingface", input_spec=spec,
                       notes=(META_NOTE,), extras={"model_type": config.model_type, "meta": True})
