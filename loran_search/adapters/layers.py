"""LoRAN layers for peft: ``y = base(x) + s·dropout(x)·f(B·A)ᵀ``.

The layers subclass peft's own LoRA layers (``lora.Linear`` here, ``lora.bnb.Linear4bit`` and
``lora.bnb.Linear8bitLt`` in :mod:`loran_search.adapters.bnb`) and keep their ``lora_A`` /
``lora_B`` modules, dropout, scaling (``s = alpha/r``, or ``alpha/sqrt(r)`` with rsLoRA), adapter
bookkeeping, merge/unmerge and save/load. What LoRAN changes:

* a :class:`LoranVariant` per LoRAN adapter (peft's variant hook), so peft's merge, unmerge,
  4-bit dequantize → add → requantize and mixed-batch inference use ``Δ = s·f(B·A)``;
* :meth:`LoranLayerMixin.get_delta_weight` returns ``s·f(B·A)``;
* :meth:`LoranLayerMixin.forward` applies the update in its cheapest exact form.

Which form is exact and cheapest (``T`` tokens, ``W`` is ``d_out × d_in``):

* **dropout inactive** (``p = 0`` or eval mode): ``dropout(x) = x``, so
  ``base(x) + x·Δᵀ = x·(W + Δ)ᵀ`` exactly (up to float rounding). The layer computes
  ``W_eff = W + Δ`` (``W`` dequantized for 4-bit) once and does **one** ``T·d_out·d_in`` product
  forward and one backward (for ``∂L/∂x``), plus ``gᵀ·x`` for ``∂L/∂Δ`` — the one product that
  LoRA does not need. Several LoRAN adapters active at once fold into the same ``W_eff``.
* **dropout active** (training with ``p > 0``): the base sees ``x`` but the adapter sees the
  dropped ``x̃``, so ``x·Wᵀ + x̃·Δᵀ`` cannot be folded; the layer computes the base output as
  usual and adds ``x̃·Δᵀ`` through the same recomputing autograd function (one more large product
  each way than the fused form, but still no stored ``d_out × d_in`` tensors).
* **8-bit base**: bitsandbytes' LLM.int8 product also quantizes the input, so folding ``Δ`` into a
  dequantized weight would change the base output; the layer keeps ``base(x) + x̃·Δᵀ``.

Plain LoRA adapters (a ``peft.LoraConfig`` added to a layer that already holds a LoRAN adapter)
keep peft's low-rank path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from peft.tuners.lora import layer as lora_layer
from torch import Tensor, nn

from loran_search.adapters.function import DeltaTerm, delta_weight, loran_linear

if TYPE_CHECKING:
    from loran_search.activations import BoundActivation

WeightFn = Callable[[], tuple[Tensor, bool]]


class LoranVariant(lora_layer.LoraVariant):
    """peft's variant hook for one LoRAN adapter: its merge, unmerge and unfused forward."""

    def supports_lora_conversion(self) -> bool:
        """A LoRAN update ``s·f(B·A)`` has no exact rank-``r`` LoRA equivalent in general."""
        return False

    @staticmethod
    def init(module: lora_layer.LoraLayer, adapter_name: str, **kwargs: Any) -> None:
        """Record the adapter's activation ``f`` (built from its ``LoranConfig``) on the layer."""
        config = kwargs["config"]
        acts = module.__dict__.setdefault("loran_activation", {})
        acts[adapter_name] = config.bound_activation()

    @staticmethod
    def merge_safe(
        module: lora_layer.LoraLayer, active_adapter: str, orig_weight: Tensor
    ) -> Tensor:
        """``W + s·f(B·A)`` as a new tensor."""
        return orig_weight + module.get_delta_weight(active_adapter).to(orig_weight.dtype)

    @staticmethod
    def merge_unsafe(
        module: lora_layer.LoraLayer, active_adapter: str, orig_weight: Tensor
    ) -> None:
        """``W += s·f(B·A)`` in place."""
        orig_weight.data += module.get_delta_weight(active_adapter).to(orig_weight.dtype)

    @staticmethod
    def unmerge(module: lora_layer.LoraLayer, active_adapter: str, orig_weight: Tensor) -> Tensor:
        """``W − s·f(B·A)``."""
        return orig_weight - module.get_delta_weight(active_adapter).to(orig_weight.dtype)

    @staticmethod
    def forward(
        module: lora_layer.LoraLayer,
        active_adapter: str,
        x: Tensor,
        result: Tensor,
        **kwargs: Any,
    ) -> Tensor:
        """``result + s·dropout(x)·f(B·A)ᵀ`` (used by peft's mixed-batch path)."""
        assert isinstance(module, LoranLayerMixin)
        return result + module._delta_forward(active_adapter, x).to(result.dtype)


def dropout_inactive(dropout: nn.Module) -> bool:
    """Whether ``dropout(x) = x`` for this adapter's dropout module right now."""
    if isinstance(dropout, nn.Identity):
        return True
    if isinstance(dropout, nn.Dropout):
        return dropout.p == 0 or not dropout.training
    return False


class LoranLayerMixin:
    """What the LoRAN layers add to peft's LoRA layers (see the module docstring).

    Subclasses define :meth:`_base_weight_fn` (``None`` when the update cannot be folded into
    the base weight) and :meth:`_compute_dtype`.
    """

    # the per-adapter activations are adapter state: peft deletes them with the adapter
    other_param_names = (*lora_layer.LoraLayer.other_param_names, "loran_activation")

    # peft attributes, declared for type checkers (they are set by peft's LoraLayer)
    lora_A: nn.ModuleDict
    lora_B: nn.ModuleDict
    lora_dropout: nn.ModuleDict
    scaling: dict[str, float]
    lora_variant: dict[str, Any]

    @property
    def loran_activations(self) -> dict[str, BoundActivation]:
        """``{adapter name: f}`` for the LoRAN adapters of this layer."""
        return self.__dict__.setdefault("loran_activation", {})

    def resolve_lora_variant(self, *, config: Any, **kwargs: Any) -> Any:
        """:class:`LoranVariant` for a ``LoranConfig``; peft's own resolution otherwise."""
        if getattr(config, "loran_version", None) is not None:
            return LoranVariant()
        return super().resolve_lora_variant(config=config, **kwargs)  # type: ignore[misc]

    def loran_term(self, adapter: str) -> DeltaTerm:
        """Scale and activation of a LoRAN adapter."""
        fn = self.loran_activations[adapter]
        return DeltaTerm(float(self.scaling[adapter]), fn, fn.is_identity)

    def _factors(self, adapter: str) -> tuple[Tensor, Tensor]:
        return self.lora_A[adapter].weight, self.lora_B[adapter].weight

    def get_delta_weight(self, adapter: str) -> Tensor:
        """``Δ = s·f(B·A)`` for a LoRAN adapter (peft's ``s·B·A`` for a plain one).

        Computed in float32 (float64 for float64 factors) and returned in ``B``'s dtype.
        """
        if adapter not in self.loran_activations:
            return super().get_delta_weight(adapter)  # type: ignore[misc]
        a, b = self._factors(adapter)
        with torch.no_grad():
            delta = delta_weight([self.loran_term(adapter)], [a, b])
        return delta.to(b.dtype)

    # --- forward ---------------------------------------------------------------------------
    def _base_weight_fn(self) -> WeightFn | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _base_bias(self) -> Tensor | None:
        return getattr(self.get_base_layer(), "bias", None)  # type: ignore[attr-defined]

    def _compute_dtype(self, x: Tensor) -> torch.dtype:  # pragma: no cover - overridden
        raise NotImplementedError

    def _delta_dtype(self, x: Tensor) -> torch.dtype:
        """Dtype of the unfused product ``x̃·Δᵀ``."""
        return self._compute_dtype(x)

    def _delta_forward(self, adapter: str, x: Tensor) -> Tensor:
        """``s·dropout(x)·f(B·A)ᵀ`` for one LoRAN adapter, through the recomputing function."""
        xd = self.lora_dropout[adapter](x)
        return loran_linear(
            xd, None, None, self._delta_dtype(x), [self.loran_term(adapter)], self._factors(adapter)
        )

    def _base_forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return self.base_layer(x, *args, **kwargs)  # type: ignore[attr-defined]

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """``base(x) + Σ_k s_k·dropout_k(x)·f_k(B_k·A_k)ᵀ`` in the cheapest exact form."""
        active = [a for a in self.active_adapters if a in self.lora_A]  # type: ignore[attr-defined]
        acts = self.loran_activations
        if (
            self.disable_adapters  # type: ignore[attr-defined]
            or self.merged  # type: ignore[attr-defined]
            or kwargs.get("adapter_names") is not None
            or not any(a in acts for a in active)
        ):
            return super().forward(x, *args, **kwargs)  # type: ignore[misc]
        self._check_forward_args(x, *args, **kwargs)  # type: ignore[attr-defined]
        kwargs.pop("adapter_names", None)
        variant_kwargs = {k: kwargs.pop(k, None) for k in lora_layer.VARIANT_KWARG_KEYS}

        weight_fn = self._base_weight_fn() if not args and not kwargs else None
        fused = []
        if weight_fn is not None:
            fused = [a for a in active if a in acts and dropout_inactive(self.lora_dropout[a])]
        if fused:
            factors = [t for a in fused for t in self._factors(a)]
            result = loran_linear(
                x,
                weight_fn,
                self._base_bias(),
                self._compute_dtype(x),
                [self.loran_term(a) for a in fused],
                factors,
            )
        else:
            result = self._base_forward(x, *args, **kwargs)
        result_dtype = result.dtype
        for a in active:
            if a in fused:
                continue
            if a in acts:
                result = result + self._delta_forward(a, x).to(result_dtype)
            elif a in self.lora_variant:  # another peft variant (e.g. DoRA) on a plain adapter
                result = self.lora_variant[a].forward(
                    self, active_adapter=a, x=x, result=result, **variant_kwargs, **kwargs
                )
            else:  # a plain LoRA adapter: peft's low-rank path
                lora_a, lora_b = self.lora_A[a], self.lora_B[a]
                xa = x.to(lora_a.weight.dtype)
                out = lora_b(lora_a(self.lora_dropout[a](xa))) * self.scaling[a]
                result = result + out.to(result_dtype)
        return result.to(result_dtype)


class LoranLinear(LoranLayerMixin, lora_layer.Linear):
    """LoRAN on a full-precision ``nn.Linear`` (float32, bfloat16 or float16 weights)."""

    def __init__(self, base_layer: nn.Module, adapter_name: str, **kwargs: Any) -> None:
        if kwargs["config"].fan_in_fan_out:
            raise ValueError(
                "LoRAN supports nn.Linear layers (fan_in_fan_out=False) only; got "
                "`fan_in_fan_out=True`. Set `fan_in_fan_out=False` in the LoranConfig."
            )
        super().__init__(base_layer, adapter_name, **kwargs)

    def _base_weight_fn(self) -> WeightFn | None:
        base = self.get_base_layer()
        return lambda: (base.weight.detach(), False)

    def _compute_dtype(self, x: Tensor) -> torch.dtype:
        return self.get_base_layer().weight.dtype

    def _delta_dtype(self, x: Tensor) -> torch.dtype:
        return self.lora_A[next(iter(self.lora_A))].weight.dtype

    def __repr__(self) -> str:
        return "loran." + nn.Module.__repr__(self)
