"""Import transformers' model code without the optional packages it pulls in eagerly.

`transformers.modeling_utils` imports torchao (when installed) for its quantizer and scipy
for the object-detection losses at import time: about a second of a `studio inspect` that
needs neither. While the model code is first imported they read as unavailable; afterwards
the checks answer truthfully again (a torchao-quantized checkpoint still loads: transformers
imports torchao inside its functions) and scipy's one function is imported on first call.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

HIDDEN = {"torchao": "is_torchao_available", "scipy": "is_scipy_available"}


def import_model_code(raw_config: dict) -> None:
    """Import `transformers.modeling_utils` lean, unless the checkpoint itself is quantized
    (then transformers needs its quantizer packages as they are)."""
    _import_models_package()
    if "transformers.modeling_utils" in sys.modules or raw_config.get("quantization_config"):
        return
    with _optional_packages_hidden():
        import transformers.modeling_utils  # noqa: F401
    _lazy_scipy_in_losses()


def _import_models_package() -> None:
    """`transformers` and `transformers.models` each scan all ~450 model folders for their
    lazy import table, under two cache keys (the folder, then its `__init__.py`). Asking for the
    folder both times reads the cached table: the same table, half a second less."""
    if "transformers.models" in sys.modules:
        return
    import transformers.utils.import_utils as import_utils

    original = import_utils.define_import_structure

    def by_folder(module_path, prefix=None):
        path = Path(module_path)
        return original(path.parent if path.name == "__init__.py" else path, prefix)

    import_utils.define_import_structure = by_folder
    try:
        import transformers.models  # noqa: F401
    finally:
        import_utils.define_import_structure = original


@contextmanager
def _optional_packages_hidden() -> Iterator[None]:
    import transformers.utils as utils
    import transformers.utils.import_utils as import_utils

    saved = {name: getattr(import_utils, name, None) for name in HIDDEN.values()}
    try:
        for name in HIDDEN.values():
            if saved[name] is not None:
                setattr(import_utils, name, _unavailable)
                setattr(utils, name, _unavailable)
        yield
    finally:
        for name, original in saved.items():
            if original is None:
                continue
            setattr(import_utils, name, original)
            setattr(utils, name, original)
            for module_name, module in list(sys.modules.items()):  # modules that bound the stand-in
                if module_name.startswith("transformers.") and getattr(module, name, None) is _unavailable:
                    setattr(module, name, original)


def _unavailable(*args, **kwargs) -> bool:
    return False


def _linear_sum_assignment(*args, **kwargs):
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(*args, **kwargs)


def _lazy_scipy_in_losses() -> None:
    """The detection losses call scipy's Hungarian matcher; give them one that imports it then."""
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("transformers.loss.") and not hasattr(module, "linear_sum_assignment"):
            setattr(module, "linear_sum_assignment", _linear_sum_assignment)
