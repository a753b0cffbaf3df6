"""How a value is stored and read back: rounding, plain copies, the writer's user attrs.

Floats are stored to :data:`~loran_search.record.keys.SIGNIFICANT_DIGITS` significant digits and
non-finite as ``null``; the tolerant readers (``_dict``, ``_str``, ``_rank``, ``_number``,
``_numbers``) turn an ill-typed stored value into ``None`` or empty, never raise. They are shared
by the package's readers and not re-exported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from loran_search.record.keys import (
    ACTIVATION_SPEC,
    ADAPTER_PATH,
    CONFIRM_KEY,
    CONFIRM_OF,
    COST,
    ENVIRONMENT,
    EVAL_SPLIT,
    FAILURE,
    FAILURE_KIND,
    FAILURE_KINDS,
    HISTORY,
    MECHANISM,
    MECHANISM_DROPPED,
    PREDICTED_NONLINEARITY,
    RECORD_VERSION,
    RECORD_VERSION_KEY,
    ROLE,
    ROLES,
    SEED_METRICS,
    SIGNIFICANT_DIGITS,
    STABILITY,
    ZERO_SHOT,
)

# -- writing -----------------------------------------------------------------------------------


def to_user_attrs(
    *,
    role: str | None = None,
    activation_spec: Mapping[str, Any] | None = None,
    seed_metrics: Mapping[str, Mapping[str, float]] | None = None,
    stability: Mapping[str, Mapping[str, Any]] | None = None,
    cost: Mapping[str, Any] | None = None,
    history: Mapping[str, list[dict[str, Any]]] | None = None,
    zero_shot: Mapping[str, Any] | None = None,
    adapter_path: str | None = None,
    eval_split: str | None = None,
    mechanism: Mapping[str, Mapping[str, Any]] | None = None,
    confirm_of: list[int] | tuple[int, ...] | None = None,
    confirm_key: str | None = None,
    predicted_nonlinearity: float | None = None,
    environment: Mapping[str, Any] | None = None,
    version: bool = False,
) -> dict[str, Any]:
    """The user attrs of a trial record, keyed as the contract says; ``None`` fields left out.

    The writer calls it as a trial progresses (seed by seed, so a failed trial keeps what it
    measured) and sets each returned item with ``trial.set_user_attr``.

    Args:
        role: One of :data:`ROLES`.
        activation_spec: ``{name, family, params}`` with every parameter resolved.
        seed_metrics: ``{"<seed>": {metric: value}}`` of the completed seeds.
        stability: ``{"<seed>": {diverged, diverged_at_step, grad_norm_max, …}}``.
        cost: The trial's cost (see the package docstring, :mod:`loran_search.record`).
        history: ``{"<seed>": [{step, loss, grad_norm, lr, …}]}``.
        zero_shot: ``{"<seed>": metrics}`` of the unadapted model, when measured.
        adapter_path: Absolute path of the kept adapter.
        eval_split: The split the trial was evaluated on.
        mechanism: ``{"<seed>": RunResult.mechanism}``; stored by :func:`mechanism_attr`
            (``layers`` dropped, floats rounded, non-finite as ``None``).
        confirm_of: A confirmation trial's search trial numbers of the same configuration.
        confirm_key: A confirmation trial's queue key (:data:`CONFIRM_KEY`).
        predicted_nonlinearity: A candidate's ``ν̂`` predicted before training.
        environment: The environment fingerprint of the machine running the trial
            (:func:`loran_search.environment.trial_fingerprint`).
        version: Add :data:`RECORD_VERSION_KEY` = :data:`RECORD_VERSION`.

    Raises:
        ValueError: ``role`` is not one of :data:`ROLES`.
    """
    if role is not None and role not in ROLES:
        raise ValueError(f"Unknown trial role {role!r}; one of {', '.join(ROLES)}.")
    items: dict[str, Any] = {
        ROLE: role,
        RECORD_VERSION_KEY: RECORD_VERSION if version else None,
        ACTIVATION_SPEC: _plain(activation_spec),
        SEED_METRICS: _plain(seed_metrics),
        STABILITY: _plain(stability),
        HISTORY: _plain(history),
        COST: _plain(cost),
        ZERO_SHOT: _plain(zero_shot) or None,
        ADAPTER_PATH: adapter_path,
        EVAL_SPLIT: eval_split,
        MECHANISM: mechanism_attr(mechanism) if mechanism is not None else None,
        CONFIRM_OF: [int(n) for n in confirm_of] if confirm_of is not None else None,
        CONFIRM_KEY: confirm_key,
        PREDICTED_NONLINEARITY: (
            round_value(float(predicted_nonlinearity))
            if predicted_nonlinearity is not None
            else None
        ),
        ENVIRONMENT: _plain(environment),
    }
    return {k: v for k, v in items.items() if v is not None}


def round_value(value: Any) -> Any:
    """A number as the record stores it: 7 significant digits, non-finite ``None``."""
    return _round(value, bools=True)


def _round(value: Any, *, bools: bool = False) -> Any:
    """A JSON-safe scalar: floats to :data:`SIGNIFICANT_DIGITS`, non-finite ``None``.

    Booleans stay booleans when ``bools``, else become 0/1 (an example's value is a number).
    """
    if isinstance(value, bool):
        return value if bools else int(value)
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}") if math.isfinite(value) else None
    if isinstance(value, (int, str)) or value is None:
        return value
    try:  # numpy and torch scalars
        return _round(float(value))
    except (TypeError, ValueError):
        return str(value)


def _compact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _compact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_compact(v) for v in value]
    return _round(value, bools=True)


def mechanism_attr(mechanism: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The stored :data:`MECHANISM`: per seed, the summary without :data:`MECHANISM_DROPPED`.

    Args:
        mechanism: ``{"<seed>": RunResult.mechanism}`` (a seed with ``{}``, no LoRAN layer, is
            kept as ``{}``).
    """
    return {
        str(seed): {str(k): _compact(v) for k, v in (m or {}).items() if k not in MECHANISM_DROPPED}
        for seed, m in mechanism.items()
    }


def failure_attrs(kind: str, message: str) -> dict[str, str]:
    """``{failure: "<kind>: <message>", failure_kind: kind}`` of a failed trial.

    Raises:
        ValueError: ``kind`` is not one of :data:`FAILURE_KINDS`.
    """
    if kind not in FAILURE_KINDS:
        raise ValueError(f"Unknown failure kind {kind!r}; one of {', '.join(FAILURE_KINDS)}.")
    text = message if message.startswith(f"{kind}:") else f"{kind}: {message}"
    return {FAILURE: text, FAILURE_KIND: kind}


def failure_kind_of(failure: Any) -> str | None:
    """The kind a ``failure`` sentence starts with (``"diverged: …"`` → ``diverged``), if known."""
    if not isinstance(failure, str):
        return None
    head = failure.split(":", 1)[0].strip()
    return head if head in FAILURE_KINDS and ":" in failure else None


def _plain(value: Any) -> Any:
    """Mappings and lists copied into plain ``dict``/``list`` (JSON-able as Optuna stores it)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# -- reading -----------------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any] | None:
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _rank(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number == int(number) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(float(value)) else None


def _numbers(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(int(n) for n in value if isinstance(n, int) and not isinstance(n, bool))
