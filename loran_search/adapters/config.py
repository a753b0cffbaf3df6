"""``LoranConfig``: a ``peft.LoraConfig`` whose update is ``ΔW = s·f(B·A)``.

``activation`` names a registered activation (``loran-search activations list``) or is a safe
formula in ``x`` (``"x + a*x*sin(w*x)"``, parsed by :mod:`activations.symbolic`, never
``eval``-ed) whose parameters take fixed values from ``activation_params``. Both fields are checked
on construction, and ``activation_params`` is replaced by the fully resolved values (defaults
filled in), so ``adapter_config.json`` records exactly what was trained. The file keeps
``peft_type: LORA``; any of the LoRAN fields (:data:`LORAN_FIELDS`) marks it as LoRAN for
:func:`loran_search.adapters.io.install_config_loader`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from peft import LoraConfig

from loran_search.activations import ActivationError, BoundActivation, get_activation, get_spec
from loran_search.activations.registry import unknown_activation_message

LORAN_VERSION = 1
#: The fields a LoRAN adapter config adds to peft's LoRA config; any one of them marks a LoRAN file.
LORAN_FIELDS = ("activation", "activation_params", "activation_expr", "loran_version")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_FORMULA_PREFIX = "formula_"


def _formula_name(expr: str, params: dict[str, float]) -> str:
    digest = hashlib.sha1(
        json.dumps([expr, sorted(params.items())]).encode(), usedforsecurity=False
    ).hexdigest()
    return _FORMULA_PREFIX + digest[:12]


def build_activation(activation: str, params: dict[str, Any] | None = None) -> BoundActivation:
    """The activation ``f`` of a LoRAN adapter from its config fields.

    Args:
        activation: A registry name, or a formula in ``x`` and the keys of ``params``.
        params: Parameter values (for a name: checked against the declared ranges, omitted ones
            take their defaults; for a formula: every parameter must be given a number).

    Returns:
        The bound activation.

    Raises:
        ActivationError: Unknown name, bad parameters, or a formula that does not parse; the
            message names the ``LoranConfig`` field at fault.
    """
    params = dict(params or {})
    if not isinstance(activation, str) or not activation.strip():
        raise ActivationError(
            f"LoranConfig.activation must be a registry name or a formula in x, got {activation!r}."
        )
    activation = activation.strip()
    if _NAME_RE.fullmatch(activation) and activation != "x":
        try:
            spec = get_spec(activation)
        except ActivationError:
            raise ActivationError(
                unknown_activation_message(activation, "LoranConfig.activation")
            ) from None
        try:
            return BoundActivation(spec, spec.resolve(**params))
        except ActivationError as err:
            raise ActivationError(f"LoranConfig.activation_params: {err}") from None
    return _formula_activation(activation, params)


def _formula_activation(expr: str, params: dict[str, Any]) -> BoundActivation:
    bad = {k: v for k, v in params.items() if isinstance(v, bool) or not isinstance(v, int | float)}
    if bad:
        raise ActivationError(
            f"LoranConfig.activation_params: a formula's parameters need plain numbers, got {bad}."
        )
    fixed = {k: float(v) for k, v in params.items()}
    name = _formula_name(expr, fixed)
    try:
        return get_activation(name)
    except ActivationError:
        pass
    try:
        from loran_search.activations import symbolic
    except ImportError as err:  # pragma: no cover - symbolic.py ships with the package
        raise ActivationError(
            f"LoranConfig.activation {expr!r} is not a registered name and formulas need "
            f"activations.symbolic, which failed to import: {err}"
        ) from err
    try:
        symbolic.register_formula(name, expr, fixed, family="custom", force=True)
    except ValueError as err:
        raise ActivationError(
            f"LoranConfig.activation: {expr!r} is neither a registered activation nor a valid "
            f"formula in x and the parameters {sorted(fixed)} (activation_params): {err}"
        ) from None
    return get_activation(name)


@dataclass
class LoranConfig(LoraConfig):
    """Configuration of a LoRAN adapter: peft's LoRA configuration plus the activation ``f``.

    The layer output is ``y = base(x) + s·dropout(x)·f(B·A)ᵀ`` with ``s = lora_alpha / r``
    (``lora_alpha / sqrt(r)`` with ``use_rslora=True``). With ``activation="identity"`` it is
    exactly peft's LoRA.

    Args:
        activation: Registry name (``"sinter"``) or a safe formula in ``x``
            (``"x + a*x*sin(w*x)"``). Default ``"sinter"``.
        activation_params: Parameter values. For a name, omitted ones take the registry
            defaults and all are range-checked; for a formula every parameter needs a number.
            Replaced by the resolved values on construction.
        activation_expr: Recorded sympy form of ``f`` (filled in; informational, lets a loader
            say what an unregistered activation was).
        loran_version: Format marker of LoRAN adapter configs (filled in; do not set).
        **kwargs: Every ``peft.LoraConfig`` field (``r``, ``lora_alpha``, ``lora_dropout``,
            ``target_modules``, ``use_rslora``, ...). ``use_dora``, ``lora_bias``,
            ``fan_in_fan_out``, the other peft LoRA variants and initialisations that assume
            ``ΔW = B·A`` (PiSSA, OLoRA, LoftQ, ...) are refused.
    """

    activation: str = field(
        default="sinter",
        metadata={
            "help": "Registry name or safe formula in x of the element-wise f in ΔW = s·f(B·A).",
            # marks LoRAN as a peft LoRA variant: peft's own (non-LoRAN) layers refuse it
            # instead of silently training plain LoRA
            "is_lora_variant": True,
        },
    )
    activation_params: dict[str, float] = field(
        default_factory=dict,
        metadata={"help": "Parameters of the activation; resolved (defaults filled in)."},
    )
    activation_expr: str | None = field(
        default=None, metadata={"help": "Recorded sympy form of the activation (filled in)."}
    )
    loran_version: int = field(
        default=LORAN_VERSION, metadata={"help": "LoRAN adapter config format (filled in)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_compatible()
        if self.activation_params is None:
            self.activation_params = {}
        if not isinstance(self.activation_params, dict):
            raise ActivationError(
                "LoranConfig.activation_params must be a mapping of parameter names to numbers, "
                f"got {type(self.activation_params).__name__}."
            )
        bound = build_activation(self.activation, self.activation_params)
        recorded = self.activation_expr
        if recorded is not None and recorded != bound.spec.expr:
            warnings.warn(
                f"LoRAN activation {self.activation!r} was recorded as f(x) = {recorded}, but the "
                f"registered one is f(x) = {bound.spec.expr}; the adapter uses the registered one.",
                stacklevel=2,
            )
        self.activation = self.activation.strip()
        self.activation_params = dict(bound.params)
        self.activation_expr = bound.spec.expr
        from loran_search.adapters.dispatch import custom_module_mapping

        self._register_custom_module(custom_module_mapping())

    def _check_compatible(self) -> None:
        if self.loran_version != LORAN_VERSION:
            raise ValueError(
                f"LoranConfig.loran_version is {self.loran_version!r}, but this loran-search "
                f"reads version {LORAN_VERSION}. The adapter was saved by another loran-search "
                "version; install that version to load it."
            )
        if self.use_dora:
            raise ValueError("LoranConfig: `use_dora=True` is not supported; set use_dora=False.")
        if self.lora_bias:
            raise ValueError(
                "LoranConfig: `lora_bias=True` is not part of the LoRAN update; "
                "set lora_bias=False."
            )
        if self.fan_in_fan_out:
            raise ValueError(
                "LoranConfig: `fan_in_fan_out=True` (GPT-2 Conv1D layers) is not supported; LoRAN "
                "adapts nn.Linear and bitsandbytes 4/8-bit layers."
            )
        if self.init_lora_weights not in (True, False, "gaussian"):
            raise ValueError(
                f"LoranConfig: `init_lora_weights={self.init_lora_weights!r}` assumes ΔW = B·A "
                "(or edits the base weight); LoRAN supports True (B = 0), False and 'gaussian'."
            )
        if getattr(self, "target_parameters", None):
            raise ValueError(
                "LoranConfig: `target_parameters` is not supported; use `target_modules`."
            )
        for f in dataclasses.fields(self):
            other_variant = f.name != "activation" and f.metadata.get("is_lora_variant")
            if other_variant and getattr(self, f.name):
                raise ValueError(
                    f"LoranConfig: `{f.name}` selects another peft LoRA variant, which cannot "
                    f"be combined with LoRAN; leave it unset."
                )

    def bound_activation(self) -> BoundActivation:
        """The activation ``f`` with the resolved parameters (what the layers hold)."""
        return build_activation(self.activation, self.activation_params)
