"""Third-party log lines that say nothing to a studio user: torchao (pulled in by transformers
and litert-torch) reports its CUDA-only kernels missing on every CPU machine, and torch's
pytree warns about torchao's enum registrations. Their errors still show."""

from __future__ import annotations

import logging

QUIET = ("torchao", "torch.utils._pytree")


def quiet_third_party_logs() -> None:
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.ERROR)
