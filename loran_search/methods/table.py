"""The peer methods' table: what each arm is, what it supports, how many parameters it trains.

Pure Python (no torch, no peft): the study-file check, the search space, the trainer and the
benchmark all read it. Every peer is built with peft's own tuner (:mod:`.build`), never
reimplemented; what a method supports was read from peft 0.21.2 (pinned) as installed:

=========  ==========================================  =================  =====================
method     update of one adapted ``nn.Linear``          quantized bases    peft source
=========  ==========================================  =================  =====================
loran      ``ΔW = s·f(B·A)`` (this project)             nf4, fp4, int8     ``loran_search.adapters``
lora       ``ΔW = s·B·A``, ``s = α/r``                  nf4, fp4, int8     ``tuners/lora``
rslora     ``ΔW = (α/√r)·B·A``                          nf4, fp4, int8     ``use_rslora``
dora       ``W' = m·(W + s·B·A)/‖W + s·B·A‖_c``          nf4, fp4, int8     ``use_dora``
hira       ``ΔW = W ⊙ (B·A)`` (Hadamard, dense)         nf4, fp4, int8     ``tuners/hira`` (+bnb.py)
peanut     ``ΔW = W·A·ψ(…)·B`` (weight-aware, dense)    none               ``tuners/peanut``
delora     ``ΔW = λ/r · B·diag(1/‖b_i‖‖a_i‖)·A·diag(‖W‖)``  none            ``tuners/delora``
=========  ==========================================  =================  =====================

PEANuT and DeLoRA have no bitsandbytes layer: their ``_create_new_module`` accepts any
``torch.nn.Linear`` — and ``bnb.nn.Linear4bit``/``Linear8bitLt`` *subclass* ``nn.Linear`` — so
peft would wrap a quantized layer and then read its packed ``uint8`` weight as if it were the
weight (PEANuT's update is built from ``W``; DeLoRA scales by ``‖W‖``): a silent wrong result,
not an error. They are refused on a quantized base before any trial (:func:`method_problems`).
All seven adapt ``nn.Linear``; PEANuT and DeLoRA nothing else (their ``_create_new_module``
raises for any other layer), DoRA and HiRA also convolutions.

Trainable parameters of one adapted layer ``d_in → d_out`` at rank ``r`` (:func:`layer_params`,
checked against peft's own count in the tests):

* loran, lora, rslora, hira: ``r·(d_in + d_out)`` (HiRA's ``A``, ``B`` have LoRA's shapes);
* dora: ``r·(d_in + d_out) + d_out`` (the magnitude vector ``m``);
* delora: ``r·(d_in + d_out) + 1`` (the boundary ``λ``);
* peanut: ``2·r·d_out + 2·depth·r²`` (``A: d_out → r``, ``depth`` encoders and decoders
  ``r → r``, ``B: r → d_out``).

**Matched budgets** (``search.match: params``): a peer's rank is the ``r'`` in
``1 … min(d_in, d_out)`` whose total ``N_m(r')`` is closest to LoRAN's ``N(r)`` at the searched
rank, ``r' = argmin |N_m(r') − N(r)|`` (a tie goes to the smaller ``r'``: never more parameters
for the same distance); :func:`matched_rank` returns it with both counts so the report can say
how close. Equal rank (``match: rank``) is the default.

Method settings (``search.params`` keys ``<method>.<setting>``, searchable like activation
parameters): defaults are peft's documented defaults; peft documents no ranges, so the ranges
below are this project's, around the default (a fixed value outside them is refused).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

LORAN = "loran"
QUANTIZED = ("nf4", "fp4", "int8")


@dataclass(frozen=True)
class Setting:
    """One setting of a method: numeric (``low``/``high``) or categorical (``choices``).

    Attributes:
        default: peft's documented default (the value used when the setting is not searched).
        low: Smallest admissible value of a numeric setting.
        high: Largest admissible value of a numeric setting.
        log: Sample a numeric range on a log scale.
        integer: The setting takes integers.
        choices: The admissible values of a categorical setting (strings).
        doc: What it means, and where the default comes from.
    """

    default: Any
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""

    @property
    def categorical(self) -> bool:
        """Whether the setting takes one of ``choices``."""
        return bool(self.choices)


@dataclass(frozen=True)
class Method:
    """One arm of a study.

    Attributes:
        name: The ``search.methods`` entry and the trial param ``method``.
        title: Display name (``DoRA``).
        update: The update rule, in words and symbols.
        quantizations: ``model.quantization`` values it runs on (``none`` always).
        layer_types: Module types it adapts.
        settings: Its searchable settings (``<name>.<setting>``).
        source: Where peft implements it (peft 0.21.2).
    """

    name: str
    title: str
    update: str
    quantizations: tuple[str, ...]
    layer_types: tuple[str, ...]
    settings: Mapping[str, Setting] = field(default_factory=dict)
    source: str = ""

    @property
    def dense(self) -> bool:
        """Whether its update is not a product of the low-rank factors alone (HiRA, PEANuT)."""
        return self.name in ("hira", "peanut")


_LINEAR_ONLY = ("Linear",)
_LINEAR_CONV = ("Linear", "Conv1d", "Conv2d", "Conv3d")

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            LORAN,
            "LoRAN",
            "ΔW = s·f(B·A) (the activations of search.activations)",
            ("none", *QUANTIZED),
            _LINEAR_ONLY,
            source="loran_search.adapters",
        ),
        Method(
            "lora",
            "LoRA",
            "ΔW = s·B·A, s = alpha/r (plain peft LoRA)",
            ("none", *QUANTIZED),
            _LINEAR_CONV,
            source="peft/tuners/lora",
        ),
        Method(
            "rslora",
            "rsLoRA",
            "ΔW = (alpha/√r)·B·A (peft LoraConfig(use_rslora=True))",
            ("none", *QUANTIZED),
            _LINEAR_CONV,
            source="peft/tuners/lora (use_rslora)",
        ),
        Method(
            "dora",
            "DoRA",
            "W' = m·(W + s·B·A)/‖W + s·B·A‖ per output row (peft LoraConfig(use_dora=True))",
            ("none", *QUANTIZED),
            _LINEAR_CONV,
            source="peft/tuners/lora/variants.py (DoraLinearVariant), lora/bnb.py",
        ),
        Method(
            "hira",
            "HiRA",
            "ΔW = W ⊙ (B·A): Hadamard product with the frozen weight, a dense update",
            ("none", *QUANTIZED),
            _LINEAR_CONV,
            settings={
                "init": Setting(
                    "zero_b",
                    choices=("zero_b", "gaussian"),
                    doc=(
                        "initialisation (peft init_weights): zero_b = True, the default (B = 0, "
                        "a no-op at the start); gaussian = 'gaussian' (Gaussian A scaled by r)"
                    ),
                )
            },
            source="peft/tuners/hira (bnb.py: Linear8bitLt, Linear4bit)",
        ),
        Method(
            "peanut",
            "PEANuT",
            "ΔW from a non-linear network of W (A: d_out→r, encoders/decoders, B), dense",
            ("none",),
            _LINEAR_ONLY,
            settings={
                "depth": Setting(
                    0,
                    low=0,
                    high=4,
                    integer=True,
                    doc="hidden encoder/decoder layers per side (peft default 0: A, B only)",
                ),
                "act_fn": Setting(
                    "relu",
                    choices=("relu", "gelu", "silu", "tanh"),
                    doc="non-linearity between its layers (peft default relu; keys of ACT2FN)",
                ),
                "scaling": Setting(
                    1.0,
                    low=1e-2,
                    high=1e2,
                    log=True,
                    doc="multiplier of its output (peft default 1.0)",
                ),
            },
            source="peft/tuners/peanut (nn.Linear only, no bitsandbytes layer)",
        ),
        Method(
            "delora",
            "DeLoRA",
            "ΔW = (λ/r)·B·diag(1/(‖b_i‖·‖a_i‖))·A·diag(‖W‖_col): a bounded-norm update",
            ("none",),
            _LINEAR_ONLY,
            settings={
                "lambda": Setting(
                    15,
                    low=1,
                    high=64,
                    integer=True,
                    doc="initial boundary λ of ‖ΔW‖ (peft delora_lambda, default 15)",
                )
            },
            source="peft/tuners/delora (nn.Linear only, no quantized layers)",
        ),
    )
}
PEER_METHODS = tuple(n for n in METHODS if n != LORAN)


def get_method(name: str) -> Method:
    """The :class:`Method` called ``name``.

    Raises:
        KeyError: No such method; the message lists them.
    """
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"Unknown method {name!r}; one of {', '.join(METHODS)}.") from None


def layer_params(method: str, d_in: int, d_out: int, rank: int, settings: Mapping[str, Any]) -> int:
    """Trainable parameters of one adapted ``d_in → d_out`` layer (module docstring)."""
    r = int(rank)
    if method == "peanut":
        depth = int(settings.get("depth", METHODS["peanut"].settings["depth"].default))
        return 2 * r * d_out + 2 * depth * r * r
    base = r * (d_in + d_out)
    if method == "dora":
        return base + d_out
    if method == "delora":
        return base + 1
    return base


def total_params(
    method: str, shapes: Iterable[tuple[int, int]], rank: int, settings: Mapping[str, Any]
) -> int:
    """``Σ`` over adapted layers ``(d_in, d_out)`` of :func:`layer_params`."""
    return sum(layer_params(method, d_in, d_out, rank, settings) for d_in, d_out in shapes)


@dataclass(frozen=True)
class Match:
    """A peer's rank chosen to match LoRAN's trainable parameters.

    Attributes:
        rank: The peer's rank ``r'``.
        params: Its trainable parameters ``N_m(r')``.
        loran_rank: The searched rank ``r``.
        loran_params: LoRAN's trainable parameters ``N(r)`` there.
    """

    rank: int
    params: int
    loran_rank: int
    loran_params: int

    @property
    def relative_gap(self) -> float:
        """``(N_m(r') − N(r)) / N(r)`` (0 when ``N(r) = 0``)."""
        return (self.params - self.loran_params) / self.loran_params if self.loran_params else 0.0


def matched_rank(
    method: str,
    shapes: Sequence[tuple[int, int]],
    loran_rank: int,
    settings: Mapping[str, Any] | None = None,
) -> Match:
    """The rank of ``method`` whose trainable parameters are closest to LoRAN's at ``loran_rank``.

    Args:
        method: A method name.
        shapes: ``(d_in, d_out)`` of every adapted layer.
        loran_rank: The searched rank ``r``.
        settings: The method's settings (PEANuT's ``depth`` changes its count).

    Returns:
        The :class:`Match` (``r' = argmin |N_m(r') − N(r)|``, ties to the smaller ``r'``).
    """
    settings = dict(settings or {})
    target = total_params(LORAN, shapes, loran_rank, {})
    widest = min((min(d_in, d_out) for d_in, d_out in shapes), default=loran_rank)
    best: tuple[float, int, int] | None = None
    for r in range(1, max(1, widest) + 1):
        n = total_params(method, shapes, r, settings)
        gap = abs(n - target)
        if best is None or gap < best[0]:
            best = (gap, r, n)
        if n > target and best is not None and best[1] < r:
            break  # counts grow with r: nothing further is closer
    assert best is not None
    return Match(best[1], best[2], int(loran_rank), target)


def method_problems(
    method: str,
    *,
    quantization: str,
    target_types: Mapping[str, set[str]] | None = None,
) -> list[str]:
    """Why ``method`` cannot run on this base, each with the nearest alternative.

    Args:
        method: A method name.
        quantization: ``model.quantization``.
        target_types: ``{target module name: {module types it matches}}`` when the model's
            layers are known (``Linear`` for every ``nn.Linear``, bitsandbytes ones included).

    Returns:
        Messages (empty when it can run).
    """
    m = get_method(method)
    problems: list[str] = []
    if quantization not in m.quantizations:
        able = [n for n, x in METHODS.items() if quantization in x.quantizations and n != LORAN]
        problems.append(
            f"{m.title} ({method}) cannot run on a base quantized to {quantization}: peft 0.21.2 "
            f"has no bitsandbytes layer for it ({m.source}), and bitsandbytes' layers subclass "
            "nn.Linear, so peft would wrap them and read their packed weight as W (a silent wrong "
            f"result). Use `model.quantization: none` for {method}, or on the {quantization} base "
            f"another peer: {', '.join(able)} (hira is the dense-update one with 4-bit layers)."
        )
    for target, types in (target_types or {}).items():
        bad = sorted(t for t in types if t not in m.layer_types)
        if bad:
            problems.append(
                f"{m.title} ({method}) adapts {', '.join(m.layer_types)} layers only, but "
                f"target module '{target}' is a {', '.join(bad)}; drop it from "
                "adapter.target_modules for this study, or use a method that adapts it: "
                + ", ".join(n for n, x in METHODS.items() if set(bad) <= set(x.layer_types))
            )
    return problems


def resolve_settings(method: str, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every setting of ``method``: ``given`` values, defaults for the rest.

    Raises:
        KeyError: A setting the method does not have (the message lists its settings).
        ValueError: A value outside the setting's range or choices.
    """
    m = get_method(method)
    given = dict(given or {})
    unknown = sorted(set(given) - set(m.settings))
    if unknown:
        valid = ", ".join(m.settings) or "none"
        raise KeyError(
            f"{m.title} ({method}) has no setting {unknown[0]!r}; its settings: {valid}."
        )
    out: dict[str, Any] = {}
    for name, s in m.settings.items():
        value = given.get(name, s.default)
        if s.categorical:
            if value not in s.choices:
                raise ValueError(
                    f"'{method}.{name}' must be one of {', '.join(s.choices)}, got {value!r}."
                )
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"'{method}.{name}' must be a number, got {value!r}.")
            if not (math.isfinite(value) and s.low is not None and s.high is not None):
                raise ValueError(f"'{method}.{name}' must be finite, got {value!r}.")
            if not s.low <= value <= s.high:
                raise ValueError(
                    f"'{method}.{name}' = {value!r} is outside its range [{s.low:g}, {s.high:g}]."
                )
            if s.integer:
                if float(value) != int(value):
                    raise ValueError(f"'{method}.{name}' must be an integer, got {value!r}.")
                value = int(value)
            else:
                value = float(value)
        out[name] = value
    return out
