"""Silence bitsandbytes' one harmless start-up message (logging only: no torch, no bitsandbytes).

Every bitsandbytes import on CPU logs ``Failed to load CPU gemm_4bit_forward from
kernels-community``; bitsandbytes then uses its own CPU library, so the message is noise. This
module is imported by :mod:`loran_search._peft_hook` before peft (which imports bitsandbytes) is
imported, so it must stay free of heavy imports.
"""

from __future__ import annotations

import logging

__all__ = ["silence_bitsandbytes_noise"]

_BNB_NOISE = "Failed to load CPU gemm_4bit_forward from kernels-community"
_BNB_LOGGER = "bitsandbytes.backends.cpu.ops"


class _DropKnownNoise(logging.Filter):
    """Drop bitsandbytes' harmless 'kernels-community' message (it uses its own CPU code)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _BNB_NOISE not in str(record.msg)


def silence_bitsandbytes_noise() -> None:
    """Filter that one message on the logger that emits it (idempotent; before or after import)."""
    logger = logging.getLogger(_BNB_LOGGER)
    if not any(isinstance(f, _DropKnownNoise) for f in logger.filters):
        logger.addFilter(_DropKnownNoise())
