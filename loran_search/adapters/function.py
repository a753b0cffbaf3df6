"""The LoRAN linear map as one memory-lean autograd function.

For one layer with frozen base weight ``W`` (``d_out × d_in``) and active LoRAN adapters
``k = 1..K`` with factors ``A_k`` (``r × d_in``), ``B_k`` (``d_out × r``), scale ``s_k`` and
element-wise activation ``f_k``, the function computes::

    Δ      = Σ_k s_k · f_k(P_k),      P_k = B_k · A_k                 (d_out × d_in)
    y      = x · (W + Δ)ᵀ + bias        (``fused``: one large product)
    y      = x · Δᵀ                     (``delta_only``: the base output is added by the caller)

and its backward, with ``g = ∂L/∂y`` and tokens flattened to rows::

    ∂L/∂x   = g · (W + Δ)               (one large product; ``g · Δ`` for delta_only)
    G       = gᵀ · x                    (d_out × d_in: the one product LoRA does not need)
    ∂L/∂P_k = s_k · G ⊙ f_k′(P_k)       (a vector-Jacobian product of f_k at the recomputed P_k)
    ∂L/∂B_k = ∂L/∂P_k · A_kᵀ,   ∂L/∂A_k = B_kᵀ · ∂L/∂P_k

Only ``x`` and the factors are saved. ``P_k``, ``f_k(P_k)`` and ``f_k′`` are recomputed in
backward (``P_k`` costs ``d_out·r·d_in``, about ``r/T`` of one large product), so autograd never
holds a ``d_out × d_in`` tensor between forward and backward; the transient buffers live only
inside one layer's forward or backward. ``f_k′`` is obtained by autograd on the recomputed
``P_k`` (``torch.autograd.grad(f(P), P, G)``), which works for every registered activation.

Precision: ``P_k``, ``f_k(P_k)``, ``G`` and the factor gradients are computed in float32 (or
float64 when the factors are float64), whatever the compute dtype: a high-frequency ``f`` such as
Sinter (``ω = 1e4``) is meaningless on bfloat16 ``P``. The large products run in the layer's
compute dtype (bfloat16 for a bf16-compute 4-bit base), as the base layer itself does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class DeltaTerm:
    """One active LoRAN adapter of a layer: its scale and activation (the factors are tensors).

    Attributes:
        scaling: ``s = alpha / r`` (or ``alpha / sqrt(r)`` with rsLoRA).
        fn: The element-wise activation ``f`` (a ``BoundActivation``).
        is_identity: ``f`` is the identity; ``f(P) = P`` and ``f′ = 1`` are used directly.
    """

    scaling: float
    fn: Callable[[Tensor], Tensor]
    is_identity: bool = False


def _factor_dtype(a: Tensor) -> torch.dtype:
    return torch.float64 if a.dtype == torch.float64 else torch.float32


def delta_weight(
    terms: Sequence[DeltaTerm],
    factors: Sequence[Tensor],
    out: Tensor | None = None,
    base: Tensor | None = None,
) -> Tensor:
    """``Δ = Σ_k s_k·f_k(B_k·A_k)`` in float32/float64, plus ``out`` or ``base`` when given.

    Args:
        terms: Scale and activation per adapter.
        factors: ``A_1, B_1, A_2, B_2, ...``.
        out: A float tensor of shape ``d_out × d_in`` that may be overwritten (``out += Δ``).
        base: A ``d_out × d_in`` tensor that must not be modified (``base + Δ`` is new).

    Returns:
        ``out + Δ`` (``out`` itself), ``base + Δ`` or ``Δ``.
    """
    for k, term in enumerate(terms):
        a, b = factors[2 * k], factors[2 * k + 1]
        dt = _factor_dtype(a)
        p = b.to(dt) @ a.to(dt)  # (d_out, d_in)
        fp = p if term.is_identity else term.fn(p)
        if out is not None:
            out.add_(fp, alpha=term.scaling)
        elif base is not None:
            out = torch.add(base.to(dt), fp, alpha=term.scaling)  # one pass, no copy of W
        else:
            out = fp.mul_(term.scaling)  # fp is a fresh temporary (p or f's output)
        del p, fp
    assert out is not None
    return out


def _vjp(term: DeltaTerm, p: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
    """``(f(P), Gᵀ ⊙ f′(P))``: the activation and its vector-Jacobian product at ``P``."""
    if term.is_identity:
        return p, grad
    with torch.enable_grad():
        p_leaf = p.detach().requires_grad_(True)
        fp = term.fn(p_leaf)
        if not fp.requires_grad:  # f does not depend on P (a constant): f′ = 0
            return fp.detach(), torch.zeros_like(p)
        (dp,) = torch.autograd.grad(fp, p_leaf, grad, allow_unused=True)
    if dp is None:
        dp = torch.zeros_like(p)
    return fp.detach(), dp


class LoranLinearFunction(torch.autograd.Function):
    """``y = x·(W + Σ s_k f_k(B_k A_k))ᵀ + bias`` (or the delta alone) with a recomputing backward.

    Call through :func:`loran_linear`.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        weight_fn: Callable[[], tuple[Tensor, bool]] | None,
        bias: Tensor | None,
        compute_dtype: torch.dtype,
        terms: tuple[DeltaTerm, ...],
        *factors: Tensor,
    ) -> Tensor:
        """See the module docstring; ``weight_fn`` returns ``W`` (``None``: delta only)."""
        w_eff = _effective_weight(weight_fn, terms, factors)
        xc = x.to(compute_dtype)
        b = None if bias is None else bias.to(compute_dtype)
        y = torch.nn.functional.linear(xc, w_eff.to(compute_dtype), b)
        del w_eff
        ctx.save_for_backward(x, *factors)
        ctx.weight_fn = weight_fn
        ctx.terms = terms
        ctx.compute_dtype = compute_dtype
        ctx.has_bias = bias is not None
        return y.to(x.dtype)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor
    ) -> tuple[Tensor | None, ...]:
        """Recompute ``P_k``, ``f_k(P_k)`` and their VJPs; see the module docstring."""
        x, *factors = ctx.saved_tensors
        terms: tuple[DeltaTerm, ...] = ctx.terms
        need_x = ctx.needs_input_grad[0]
        need_bias = ctx.has_bias and ctx.needs_input_grad[2]
        need_factors = any(ctx.needs_input_grad[5:])
        d_out, d_in = grad_out.shape[-1], x.shape[-1]

        w_eff: Tensor | None = None  # W + Σ s_k f_k(P_k), built term by term
        w_base: Tensor | None = None  # W when it must not be modified
        if need_x and ctx.weight_fn is not None:
            w, fresh = ctx.weight_fn()
            if fresh and w.dtype == _factor_dtype(factors[0]):
                w_eff = w
            else:
                w_base = w

        grads_factors: list[Tensor | None] = [None] * len(factors)
        g_mat: Tensor | None = None
        if need_factors:
            dt = _factor_dtype(factors[0])
            g2 = grad_out.reshape(-1, d_out).to(dt)
            x2 = x.reshape(-1, d_in).to(dt)
            g_mat = g2.t() @ x2  # (d_out, d_in) = ∂L/∂Δ before the scale
            del g2, x2
        for k, term in enumerate(terms):
            a, b = factors[2 * k], factors[2 * k + 1]
            dt = _factor_dtype(a)
            need_ab = ctx.needs_input_grad[5 + 2 * k] or ctx.needs_input_grad[6 + 2 * k]
            if not need_ab and not need_x:
                continue
            p = b.to(dt) @ a.to(dt)
            if need_ab:
                assert g_mat is not None
                fp, dp = _vjp(term, p, g_mat)  # dp = G ⊙ f′(P); the scale s goes on the small
                if ctx.needs_input_grad[5 + 2 * k]:  # factor gradients, not on a d_out × d_in
                    grads_factors[2 * k] = (b.to(dt).t() @ dp).mul_(term.scaling).to(a.dtype)
                if ctx.needs_input_grad[6 + 2 * k]:
                    grads_factors[2 * k + 1] = (dp @ a.to(dt).t()).mul_(term.scaling).to(b.dtype)
                del dp
            else:
                fp = p if term.is_identity else term.fn(p)
            if need_x:
                if w_eff is not None:
                    w_eff.add_(fp, alpha=term.scaling)
                elif w_base is not None:
                    w_eff = torch.add(w_base.to(dt), fp, alpha=term.scaling)
                    w_base = None
                else:
                    w_eff = fp * term.scaling
            del p, fp
        del g_mat

        grad_x = None
        if need_x:
            assert w_eff is not None
            cd = ctx.compute_dtype
            grad_x = (grad_out.to(cd) @ w_eff.to(cd)).to(x.dtype)
        del w_eff
        grad_bias = None
        if need_bias:
            grad_bias = grad_out.reshape(-1, d_out).sum(0)
        return (grad_x, None, grad_bias, None, None, *grads_factors)


def _effective_weight(
    weight_fn: Callable[[], tuple[Tensor, bool]] | None,
    terms: Sequence[DeltaTerm],
    factors: Sequence[Tensor],
) -> Tensor:
    """``W + Δ`` (or ``Δ``) in the factors' working dtype, never modifying the base weight."""
    if weight_fn is None:
        return delta_weight(terms, factors)
    w, fresh = weight_fn()
    if fresh and w.dtype == _factor_dtype(factors[0]):
        return delta_weight(terms, factors, out=w)
    return delta_weight(terms, factors, base=w)


def loran_linear(
    x: Tensor,
    weight_fn: Callable[[], tuple[Tensor, bool]] | None,
    bias: Tensor | None,
    compute_dtype: torch.dtype,
    terms: Sequence[DeltaTerm],
    factors: Sequence[Tensor],
) -> Tensor:
    """Apply :class:`LoranLinearFunction`.

    Args:
        x: Input ``(..., d_in)``.
        weight_fn: Returns ``(W, fresh)``: the frozen base weight (dequantized for 4-bit layers)
            and whether it is a new tensor the function may overwrite; ``None`` computes
            ``x·Δᵀ`` only (the caller adds the base output).
        bias: Frozen base bias, or ``None``.
        compute_dtype: Dtype of the large product (the base layer's compute dtype).
        terms: Scale and activation per active adapter.
        factors: ``A_1, B_1, ...`` (the ``weight`` of each ``lora_A`` / ``lora_B``).

    Returns:
        ``(..., d_out)`` in ``x``'s dtype.
    """
    return LoranLinearFunction.apply(x, weight_fn, bias, compute_dtype, tuple(terms), *factors)
