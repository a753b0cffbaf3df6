"""The mechanism behind a gain: how non-linear, at what scale and of what rank each update was.

For one adapted layer with factors ``A`` (``r × d_in``), ``B`` (``d_out × r``), scale ``s`` and the
element-wise activation ``f``, let ``P = B·A`` (``d_out × d_in``), LoRAN's update
``Δ = s·f(P)`` and LoRA's ``s·P``. The figures:

* **effective non-linearity** ``ν = ‖f(P) − P‖_F / ‖P‖_F`` — how far ``f`` moved the update away
  from LoRA's at the ``P`` the run visited (0 for the identity; ``ν = 0`` when ``P = 0``, e.g. at
  initialisation with ``B = 0``, where the ratio is undefined and the update is LoRA's anyway);
* the **visited scale** of ``P``: ``rms(P) = ‖P‖_F/√(d_out·d_in)``, the 99.9th percentile of
  ``|P|`` (exact at any size: a ``torch.topk`` of the upper tail, :func:`percentile`) and, for a
  periodic ``f`` with frequency ``ω``, ``ω·rms(P)`` (the phase ``f`` sees at a typical entry;
  ``≪ 1`` means ``sin(ωx) ≈ ωx``, and ``f`` is a small polynomial perturbation there);
* the **stable rank** ``‖M‖_F² / ‖M‖₂²`` of ``Δ`` and of ``s·P`` (scale-free, so ``s`` cancels;
  ``≤ rank(M)``, hence ``≤ r`` for LoRA, while an element-wise ``f`` can raise the rank of ``Δ``
  above ``r``). ``‖M‖₂`` comes from block power iteration (:func:`spectral_norm`), never from a
  full SVD of a ``d_out × d_in`` matrix.

A configuration whose layers all have ``ν < INERT_THRESHOLD`` is *inert*: "LoRA in all but
name", not evidence about ``f``.

Numerics: ``P`` and ``f(P)`` are computed as training computes them (float32, float64 when the
factors are float64; :mod:`loran_search.adapters.function`), then norms and the power iteration
run in float64 for layers of at most ``2²²`` elements and in float32 above. In float32 ``ν``
resolves relative changes down to about 1e-7 (the float32 rounding of ``f(P)``), far below
``INERT_THRESHOLD``. Everything runs under ``torch.no_grad()`` on the factors' device.

Cost (measured on one CPU thread, shared 2-core machine, median of 30 calls; r = 8, the
registered Sinter ``f``, ``A = 5e-5``, ``ω = 1e4``; forward = ``loran_linear`` on a batch of
8 × 96 tokens, fused ``x·(W + s·f(B·A))ᵀ``)::

    layer (d_out × d_in)    layer_mechanism    one LoRAN forward    plain x·Wᵀ
    576 × 576 (q_proj)      ≈ 10 ms            ≈ 5.4 ms             ≈ 4.6 ms
    192 × 576 (v_proj)      ≈ 2.2 ms           ≈ 1.7 ms             ≈ 1.5 ms

i.e. one to two forwards of the layer (no backward): negligible once per run or per
evaluation, too much for every training step. A 1024 × 1024 layer with a strong ``f`` (full-rank
``f(P)``) takes about 0.25 s; the power iteration on a dense Gaussian 1024 × 1024 (the slowest
case: top singular values 0.3% apart) about 0.6 s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from loran_search.record import INERT_THRESHOLD  # ν below which a layer is inert

#: Layers with at most this many elements get float64 norms and power iteration.
FLOAT64_MAX_ELEMENTS = 2**22
#: Block power iteration: block width, relative tolerance on ``σ₁`` and iteration cap.
POWER_BLOCK = 8
POWER_TOL = 1e-6
POWER_MAX_ITER = 300
#: The figures :func:`summarize` gives a median and a maximum of.
FIGURES = (
    "nonlinearity",
    "p_rms",
    "p_abs_p999",
    "omega_p_rms",
    "stable_rank",
    "stable_rank_lora",
    "delta_fro",
    "lora_fro",
)

Activation = Callable[[Tensor], Tensor]


def _work_dtype(m: Tensor) -> torch.dtype:
    return torch.float64 if m.numel() <= FLOAT64_MAX_ELEMENTS else torch.float32


def _compute_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _fro(m: Tensor) -> float:
    return float(torch.linalg.vector_norm(m, dtype=torch.float64))


def _apply(f: Activation, p: Tensor) -> Tensor:
    fp = f(p)
    if not isinstance(fp, Tensor) or fp.shape != p.shape:
        got = tuple(fp.shape) if isinstance(fp, Tensor) else type(fp).__name__
        raise ValueError(
            f"f must be element-wise (same shape out as in): {tuple(p.shape)} → {got}."
        )
    return fp.to(p.dtype)


def predict_nonlinearity(P: Tensor, f: Activation) -> float:
    """``ν = ‖f(P) − P‖_F / ‖P‖_F`` for a given ``P``, e.g. a trained baseline's ``B·A``.

    A trained QLoRA baseline's ``P`` at the same rank predicts how non-linear a queued
    configuration's ``f`` will be before it trains (to first order: the run's own ``P`` drifts
    with training).

    Args:
        P: The ``d_out × d_in`` product ``B·A`` (any float dtype; bfloat16/float16 are upcast to
            float32, float64 is kept).
        f: The element-wise activation.

    Returns:
        ``ν``, and ``0.0`` when ``P = 0`` (the ratio is undefined there; ``f(0) = 0`` for every
        registered activation, so the update is LoRA's).

    Raises:
        ValueError: ``f`` does not return a tensor of ``P``'s shape.
    """
    with torch.no_grad():
        p = P.detach().to(_compute_dtype(P))
        norm = _fro(p)
        if norm == 0.0:
            return 0.0
        return _fro(_apply(f, p) - p) / norm


def percentile(values: Tensor, q: float = 0.999) -> float:
    """The ``q``-quantile of ``values``, exactly, by ``torch.topk`` on the upper tail.

    Same definition as ``torch.quantile``/``numpy.percentile`` (linear interpolation): with the
    ``n`` values sorted ascending, ``h = (n − 1)·q`` and the result is
    ``x_(⌊h⌋) + (h − ⌊h⌋)·(x_(⌊h⌋+1) − x_(⌊h⌋))``. Only the ``n − ⌊h⌋`` largest values are
    selected (about ``n/1000`` for the 99.9th percentile), so there is no size limit and no
    subsample (``torch.quantile`` refuses more than ``2²⁴`` elements and sorts the whole input),
    and the interpolation runs in float64 (``torch.quantile`` on float32 computes ``h`` in
    float32, off by up to ~1e-5 relative on a 576 × 576 layer).
    """
    flat = values.reshape(-1)
    n = flat.numel()
    if n == 0:
        raise ValueError("percentile of an empty tensor.")
    h = (n - 1) * q
    lo = math.floor(h)
    top = torch.topk(flat, n - lo, sorted=True).values  # descending: top[-1] = x_(lo)
    x_lo = float(top[-1])
    x_hi = float(top[-2]) if top.numel() >= 2 else x_lo
    return x_lo + (h - lo) * (x_hi - x_lo)


def visited_scale(P: Tensor, frequency: float | None = None) -> dict[str, float | None]:
    """The scale of ``P`` the run visited.

    Args:
        P: The ``d_out × d_in`` product ``B·A``.
        frequency: ``ω`` of a periodic activation, or ``None``.

    Returns:
        ``p_rms`` (``‖P‖_F/√(d_out·d_in)``), ``p_abs_p999`` (the 99.9th percentile of ``|P|``,
        exact, by :func:`percentile`: no subsample at any size) and ``omega_p_rms``
        (``ω·rms(P)``, ``None`` without a frequency).
    """
    with torch.no_grad():
        p = P.detach().to(_compute_dtype(P))
        rms = _fro(p) / math.sqrt(max(1, p.numel()))
        p999 = percentile(p.abs(), 0.999) if p.numel() else 0.0
    return {
        "p_rms": rms,
        "p_abs_p999": p999,
        "omega_p_rms": None if frequency is None else float(frequency) * rms,
    }


def spectral_norm(
    M: Tensor,
    *,
    block: int = POWER_BLOCK,
    tol: float = POWER_TOL,
    max_iter: int = POWER_MAX_ITER,
    seed: int = 0,
) -> float:
    """``‖M‖₂`` (the top singular value ``σ₁``) by block power iteration.

    Subspace iteration on ``MᵀM`` with a block of ``b = min(block, d_out, d_in)`` vectors from a
    seeded Gaussian start: ``V ← orth(Mᵀ·M·V)`` (a thin QR). The estimate ``σ̂₁`` is the largest
    singular value of the thin ``M·V`` (``d_out × b``; never an SVD of ``M`` itself); it never
    exceeds ``σ₁`` and converges at the rate ``(σ_{b+1}/σ₁)²`` per iteration (exactly after one
    iteration when ``rank(M) ≤ b``, as for LoRA's ``s·P`` with ``r ≤ 8``). Iteration stops when
    ``σ̂₁`` changes by less than ``tol`` relative, or after ``max_iter`` iterations.

    Args:
        M: A 2-D tensor.
        block: Block width ``b``.
        tol: Relative change of ``σ̂₁`` that stops the iteration.
        max_iter: Iteration cap.
        seed: Seed of the start block (a CPU generator, so the result does not depend on the
            device's random state).

    Returns:
        ``σ̂₁``; 0.0 for a zero or empty matrix, ``nan`` when ``M`` has a non-finite entry.
    """
    with torch.no_grad():
        if M.ndim != 2:
            raise ValueError(f"spectral_norm needs a 2-D tensor, got shape {tuple(M.shape)}.")
        m = M.detach().to(_work_dtype(M))
        if m.numel() == 0 or not bool(m.any()):
            return 0.0
        if not bool(torch.isfinite(m).all()):
            return math.nan
        b = max(1, min(block, *m.shape))
        gen = torch.Generator(device="cpu").manual_seed(seed)
        v = torch.randn(m.shape[1], b, generator=gen, dtype=m.dtype).to(m.device)
        v = torch.linalg.qr(v).Q
        sigma = 0.0
        for _ in range(max_iter):
            mv = m @ v
            new = float(torch.linalg.svdvals(mv)[0])
            if new == 0.0:  # the start block is orthogonal to the row space (measure zero)
                return 0.0
            if abs(new - sigma) <= tol * new:
                return new
            sigma = new
            v = torch.linalg.qr(m.T @ mv).Q
        return sigma


def stable_rank(M: Tensor, **power: Any) -> float:
    """``‖M‖_F² / ‖M‖₂²`` (0.0 for a zero matrix, ``nan`` for a non-finite one).

    ``power`` goes to :func:`spectral_norm`.
    """
    with torch.no_grad():
        sigma = spectral_norm(M, **power)
        if math.isnan(sigma):
            return math.nan
        if sigma == 0.0:
            return 0.0
        return _fro(M.detach()) ** 2 / sigma**2


def inert(nu: float, threshold: float = INERT_THRESHOLD) -> bool:
    """Whether an effective non-linearity ``ν`` is below ``threshold`` (see ``INERT_THRESHOLD``)."""
    return nu < threshold


def layer_mechanism(
    A: Tensor,
    B: Tensor,
    scale: float,
    f: Activation,
    frequency: float | None = None,
) -> dict[str, Any]:
    """The mechanism figures of one adapted layer (see the module docstring).

    Args:
        A: ``r × d_in`` factor.
        B: ``d_out × r`` factor.
        scale: ``s = alpha/r`` (or ``alpha/√r`` with rsLoRA).
        f: The element-wise activation.
        frequency: ``ω`` of a periodic activation (e.g. Sinter's), or ``None``.

    Returns:
        A dict with ``nonlinearity`` (``ν``), ``p_rms``, ``p_abs_p999``, ``omega_p_rms``
        (``None`` without a frequency), ``stable_rank`` (of ``Δ = s·f(P)``),
        ``stable_rank_lora`` (of ``s·P``), ``delta_fro`` (``‖Δ‖_F``), ``lora_fro`` (``‖s·P‖_F``),
        ``inert`` (``ν < INERT_THRESHOLD``), ``rank`` (``r``), ``d_out`` and ``d_in``. A layer
        whose ``P`` or ``f(P)`` has a non-finite entry (a diverged run) gets ``nan`` figures and
        ``inert = False`` instead of an exception.

    Raises:
        ValueError: The factor shapes do not chain, or ``f`` is not element-wise.
    """
    if A.ndim != 2 or B.ndim != 2 or B.shape[1] != A.shape[0]:
        raise ValueError(
            f"Factors must be A (r × d_in) and B (d_out × r); got A {tuple(A.shape)}, "
            f"B {tuple(B.shape)}."
        )
    with torch.no_grad():
        dt = _compute_dtype(A)
        p = B.detach().to(dt) @ A.detach().to(dt)
        fp = _apply(f, p)
        p_norm = _fro(p)
        nu = 0.0 if p_norm == 0.0 else _fro(fp - p) / p_norm
        out: dict[str, Any] = {"nonlinearity": nu}
        out.update(visited_scale(p, frequency))
        out["stable_rank"] = stable_rank(fp)
        out["stable_rank_lora"] = stable_rank(p)
        out["delta_fro"] = abs(scale) * _fro(fp)
        out["lora_fro"] = abs(scale) * p_norm
    out.update(inert=inert(nu), rank=int(A.shape[0]), d_out=int(B.shape[0]), d_in=int(A.shape[1]))
    return out


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0


def summarize(per_layer: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Median and maximum over layers of every figure of :func:`layer_mechanism`.

    Args:
        per_layer: One :func:`layer_mechanism` dict per adapted layer.

    Returns:
        ``{figure}_median`` and ``{figure}_max`` for each name in ``FIGURES`` (``nonlinearity``,
        ``p_rms``, ``p_abs_p999``, ``omega_p_rms``, ``stable_rank``, ``stable_rank_lora``,
        ``delta_fro``, ``lora_fro``; the median of an even count is the mean of the middle two;
        ``None`` when no layer has a finite value, e.g. ``omega_p_rms`` without a frequency;
        non-finite values are left out), plus ``n_layers``, ``inert_layers`` (layers with
        ``ν < INERT_THRESHOLD``), ``inert`` (every layer inert, i.e. every ``ν`` finite and below
        ``INERT_THRESHOLD``: LoRA in all but name) and ``nonfinite_layers`` (layers with a
        non-finite figure: a diverged run).

    Raises:
        ValueError: ``per_layer`` is empty.
    """
    if not per_layer:
        raise ValueError("summarize needs at least one layer.")
    out: dict[str, Any] = {}
    for key in FIGURES:
        values = [float(d[key]) for d in per_layer if d.get(key) is not None]
        values = [v for v in values if math.isfinite(v)]
        out[f"{key}_median"] = _median(values) if values else None
        out[f"{key}_max"] = max(values) if values else None
    flags = [inert(float(d["nonlinearity"])) for d in per_layer]
    bad = sum(
        1
        for d in per_layer
        if any(d.get(k) is not None and not math.isfinite(float(d[k])) for k in FIGURES)
    )
    out.update(
        n_layers=len(per_layer), inert_layers=sum(flags), inert=all(flags), nonfinite_layers=bad
    )
    return out
