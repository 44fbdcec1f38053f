"""Third-party log lines that say nothing to a studio user: torchao (pulled in by transformers
and litert-torch) reports its CUDA-only kernels missing on every CPU machine, and torch's
pytree warns about torchao's enum registrations. Their errors still show."""

from __future__ import annotations

import logging

QUIET = ("torchao", "torch.utils._pytree")


def quiet_third_party_logs() -> None:
    quiet_loggers(*QUIET)


def quiet_loggers(*names: str) -> None:
    """Errors only from these loggers ("" is the root logger)."""
    for name in names:
        logging.getLogger(name or None).setLevel(logging.ERROR)


def quiet_transformers() -> None:
    """No progress bars or advisory logs: the CLI's stdout is parsed by scripts."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
