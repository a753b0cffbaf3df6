"""Peer arms of a study — lora, rslora, dora, hira, peanut, delora — as peft's own tuners.

:mod:`.table` says what each method is, what bases and layers it supports, how many parameters it
trains and which rank matches LoRAN's budget (pure Python, cheap to import); :mod:`.build` builds
it with peft (imported there, on use).
"""

from __future__ import annotations

from loran_search.methods.table import (
    LORAN,
    METHODS,
    PEER_METHODS,
    Match,
    Method,
    Setting,
    get_method,
    layer_params,
    matched_rank,
    method_problems,
    resolve_settings,
    total_params,
)

__all__ = [
    "LORAN",
    "METHODS",
    "PEER_METHODS",
    "Match",
    "Method",
    "Setting",
    "get_method",
    "layer_params",
    "matched_rank",
    "method_problems",
    "resolve_settings",
    "total_params",
]
