import pytest
import torch

from studio.core.base.errors import InputSpecError
from studio.core.model.input_spec import InputSpec


@pytest.mark.parametrize("text", [
    "1x1x8x8 float32",
    "1x3x224x224 float16",
    "input_ids 1x128 int64 [0,30522); attention_mask 1x128 int64 [1,2)",
    "1x4 float32; 1x2 int64",
])
def test_round_trip(text):
    spec = InputSpec.parse(text)
    assert InputSpec.parse(str(spec)) == spec


def test_named_entries_are_keyword_and_values_respect_bounds():
    spec = InputSpec.parse("input_ids 2x16 int64 [5,9); attention_mask 2x16 int64 [1,2)")
    assert spec.keyword
    args, kwargs = spec.make_inputs()
    assert args == ()
    ids = kwargs["input_ids"]
    assert ids.shape == (2, 16) and ids.dtype == torch.int64
    assert int(ids.min()) >= 5 and int(ids.max()) < 9
    assert bool((kwargs["attention_mask"] == 1).all())


def test_positional_from_cli_shape_and_dtype():
    spec = InputSpec.from_shape("1,3,32,32")
    assert not spec.keyword and spec.tensors[0].shape == (1, 3, 32, 32)
    args, _ = spec.with_dtype("float16").make_inputs()
    assert args[0].dtype == torch.float16


def test_inputs_are_deterministic():
    spec = InputSpec.parse("2x5 float32")
    assert torch.equal(spec.make_inputs(seed=3)[0][0], spec.make_inputs(seed=3)[0][0])


@pytest.mark.parametrize("bad", ["", "abc", "1x0x3 float32", "1x3 floaty", "1x3 float32 extra", "a 1x2; a 1x2", "9bad 1x2"])
def test_bad_specs_raise_clear_errors(bad):
    with pytest.raises(InputSpecError):
        InputSpec.parse(bad)
