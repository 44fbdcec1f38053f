"""Datasets read from the user's files: image folders, text CSVs and tensor files."""

from __future__ import annotations

import csv
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from studio.core.data.dataset import Dataset, split_indices
from studio.core.base.errors import StudioError
from studio.core.model.loaded_model import LoadedModel

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def normalisation(query: str, loaded: LoadedModel, channels: int) -> tuple[list[float], list[float]] | None:
    """(mean, std) from `mean=0.485,0.456,0.406&std=0.229,0.224,0.225`, else from a Hugging Face
    model folder's preprocessor_config.json (image_mean/image_std), else None (plain [0, 1])."""
    from urllib.parse import parse_qs

    values: dict[str, list[float]] = {}
    if query:
        fields = parse_qs(query, keep_blank_values=True)
        unknown = sorted(set(fields) - {"mean", "std"})
        if unknown:
            raise StudioError(f"imagefolder options: unknown {', '.join(unknown)}; use mean=…&std=… (one value per "
                              "channel, e.g. mean=0.485,0.456,0.406&std=0.229,0.224,0.225).")
        for key in ("mean", "std"):
            if key not in fields:
                raise StudioError(f"imagefolder options need both mean and std (got only {', '.join(fields)}).")
            try:
                values[key] = [float(v) for v in fields[key][-1].split(",")]
            except ValueError:
                raise StudioError(f"imagefolder {key}={fields[key][-1]!r}: give comma-separated numbers.") from None
    elif loaded.kind == "huggingface":
        import json

        config = Path(loaded.source) / "preprocessor_config.json"
        try:
            data = json.loads(config.read_text()) if config.is_file() else {}
        except (OSError, ValueError):
            data = {}
        if isinstance(data.get("image_mean"), list) and isinstance(data.get("image_std"), list):
            values = {"mean": [float(v) for v in data["image_mean"]], "std": [float(v) for v in data["image_std"]]}
    if not values:
        return None
    for key, vals in values.items():
        if len(vals) == 1:
            values[key] = vals = vals * channels
        if len(vals) != channels:
            raise StudioError(f"imagefolder {key} has {len(vals)} values; the model takes {channels} channel(s).")
    if any(v <= 0 for v in values["std"]):
        raise StudioError("imagefolder std values must be positive.")
    return values["mean"], values["std"]


def imagefolder(path: Path, loaded: LoadedModel, query: str = "") -> Dataset:
    """One sub-folder per class; images resized to the input spec's HxW, scaled to [0, 1],
    then normalised with mean/std when given (or read from a HF preprocessor config)."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_dir():
        raise StudioError(f"{path}: imagefolder data must be a folder with one sub-folder per class.")
    spec = loaded.input_spec.tensors[0]
    if len(spec.shape) != 4:
        raise StudioError(f"imagefolder data needs an image input spec (N x C x H x W), not '{loaded.input_spec}'.")
    channels, height, width = spec.shape[1:]
    if channels not in (1, 3):
        raise StudioError(f"imagefolder data gives 1 or 3 channels; the model expects {channels}.")
    norm = normalisation(query, loaded, channels)
    classes = sorted(d.name for d in path.iterdir() if d.is_dir())
    if not classes:
        raise StudioError(f"{path}: no class sub-folders found.")
    images, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted((path / name).iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with _bombs_are_errors(), Image.open(file) as img:
                    img = img.convert("L" if channels == 1 else "RGB").resize((width, height))
                    data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise StudioError(f"{file}: the image is too large to decode safely ({exc}).") from None
            except (UnidentifiedImageError, OSError) as exc:
                raise StudioError(f"{file}: not a readable image ({exc}).") from exc
            images.append(data.view(height, width, channels).permute(2, 0, 1).float() / 255.0)
            labels.append(label)
    if not images:
        raise StudioError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the class folders.")
    stacked = torch.stack(images)
    if norm is not None:
        stacked = (stacked - torch.tensor(norm[0]).view(1, -1, 1, 1)) / torch.tensor(norm[1]).view(1, -1, 1, 1)
    train, val = split_indices(len(images))
    return Dataset(f"imagefolder:{path}" + (f"?{query}" if query else ""),
                   {spec.name: stacked.to(getattr(torch, spec.dtype))},
                   torch.tensor(labels), loaded.input_spec.keyword, train, val, classes)


@contextmanager
def _bombs_are_errors() -> Iterator[None]:
    """PIL only warns between MAX_IMAGE_PIXELS and twice that; a decompression bomb is refused."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model", "merges.txt")


def _tokenizer(loaded: LoadedModel):
    if loaded.extras.get("data") == "rotten-tomatoes":
        from studio.core.model.samples.minilm_sentiment import load_tokenizer

        return load_tokenizer()
    if loaded.kind == "huggingface":
        from transformers import AutoTokenizer

        folder = Path(loaded.source)
        if not any((folder / name).is_file() for name in TOKENIZER_FILES):
            raise StudioError(f"{loaded.source}: no usable tokenizer in the model folder (none of "
                              f"{', '.join(TOKENIZER_FILES)}).")
        try:
            tokenizer = AutoTokenizer.from_pretrained(loaded.source, local_files_only=True)
        except Exception as exc:
            raise StudioError(f"{loaded.source}: no usable tokenizer in the model folder ({exc}).") from exc
        if len(tokenizer) < 100:  # a vocabulary of special tokens only: every word would be [UNK]
            raise StudioError(f"{loaded.source}: no usable tokenizer in the model folder (its vocabulary has "
                              f"{len(tokenizer)} tokens).")
        return tokenizer
    raise StudioError("csv data is tokenized with the model folder's tokenizer; open a Hugging Face model "
                      "folder (or sample:minilm-sentiment) to use it.")


def csv_text(path: Path, loaded: LoadedModel) -> Dataset:
    """A `text,label` CSV with a header; labels are integers or class names."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
                raise StudioError(f"{path}: needs a header with 'text' and 'label' columns.")
            rows = [(r["text"], r["label"]) for r in reader if r.get("text")]
            unlabeled = [i for i, (_, label) in enumerate(rows, 1) if label is None or not label.strip()]
            if unlabeled:
                raise StudioError(f"{path}: {len(unlabeled)} row(s) have no label (first: text row {unlabeled[0]}).")
    except (UnicodeDecodeError, csv.Error) as exc:
        raise StudioError(f"{path}: not a readable UTF-8 CSV ({exc}).") from exc
    if not rows:
        raise StudioError(f"{path}: no rows.")
    raw = [label for _, label in rows]
    classes = sorted(set(raw), key=lambda v: (not v.lstrip("-").isdigit(), int(v) if v.lstrip("-").isdigit() else 0, v))
    if all(v.lstrip("-").isdigit() for v in raw):
        labels = torch.tensor([int(v) for v in raw])
    else:
        index = {name: i for i, name in enumerate(classes)}
        labels = torch.tensor([index[v] for v in raw])
    names = {t.name: t for t in loaded.input_spec.tensors}
    length = names["input_ids"].shape[-1] if "input_ids" in names else 128
    from studio.core.data.tokenize import tokenize_texts

    enc = tokenize_texts(_tokenizer(loaded), [t for t, _ in rows], length)
    inputs = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc and (k in names or not names)}
    train, val = split_indices(len(rows))
    return Dataset(f"csv:{path}", inputs, labels, True, train, val, classes)


def tensor_file(path: Path, loaded: LoadedModel) -> Dataset:
    """Unlabeled example inputs: a .npy array (one input) or a .safetensors file (one tensor per input)."""
    spec = loaded.input_spec
    if path.suffix == ".npy":
        import numpy as np

        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise StudioError(f"{path}: not a readable .npy array ({exc}).") from exc
        tensors = {spec.tensors[0].name: torch.from_numpy(array)}
    elif path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path))
        except Exception as exc:
            raise StudioError(f"{path}: not a readable safetensors file ({exc}).") from exc
        if len(tensors) == 1 and len(spec.tensors) == 1:
            tensors = {spec.tensors[0].name: next(iter(tensors.values()))}
    else:
        raise StudioError(f"{path}: tensors data must be a .npy or .safetensors file.")
    wanted = [t.name for t in spec.tensors]
    if set(tensors) != set(wanted):
        raise StudioError(f"{path} holds {', '.join(sorted(tensors))}; the model's inputs are {', '.join(wanted)}.")
    inputs = {}
    for t in spec.tensors:
        value = tensors[t.name]
        if tuple(value.shape[1:]) != t.shape[1:]:
            raise StudioError(f"{path}: {t.name} has shape {tuple(value.shape)}; expected N x "
                              f"{'x'.join(map(str, t.shape[1:]))} to match the input spec.")
        inputs[t.name] = value.to(getattr(torch, t.dtype))
    train, val = split_indices(len(next(iter(inputs.values()))))
    return Dataset(f"tensors:{path}", inputs, None, spec.keyword, train, val)
