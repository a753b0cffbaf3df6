r"""A form trial before training: screened at zero cost, and never trained twice.

**Screening** (before any training, at zero cost; :func:`screen`). A candidate form is refused
when a rule of ``require`` fails on the visited range of ``P = B·A`` — ``[−m, m]`` with ``m``
the largest ``|P|`` entry recorded (``mechanism.p_quantiles``) by the COMPLETE search trials of
the same rank, ``[−1, 1]`` before any has run (:func:`loran_search.record.visited_range`, the
rule the report shows the forms on too):

* ``starts_at_zero``: ``f(0) = 0`` (else ``ΔW = s·f(B·A)`` does not start at zero when
  ``B = 0``);
* ``finite``: ``f`` is defined, and ``f`` and ``f'`` are finite on the range: ``f`` on 4001
  points and 0, then no singularity inside the range — found symbolically where sympy can
  (:func:`activations.audit.singularities`: the real roots of a polynomial denominator, the
  poles of ``tan``, where ``log``/``sqrt`` leave the reals; a sign change of any other
  denominator on a dense grid) — then ``f'`` finite on the audit's oscillation-aware grid and
  its Lipschitz estimate at most :data:`FINITE_SLOPE` (the fallback for a pole no search
  placed: a point grid alone steps over poles);
* ``{max_lipschitz: L}``: the audit's Lipschitz estimate ``sup |f'|`` on the range is ≤ ``L``.

Always refused: a form that reduces to ``f(x) = x`` (it is the baseline, LoRA), and a form that
is linear at the sampled values, ``f(x) = c·x (+ d)`` (``f'' ≡ 0``, e.g. ``x + a·x``): that is
LoRA with its step rescaled by ``c``, inert as a non-linearity (``failure`` = ``screened:
linear: …``). A refused form
never reaches the training function: its trial is recorded **PRUNED** (samplers rank pruned
trials below complete ones, so TPE learns to avoid it; it drops FAIL trials and kept proposing
them) with ``user_attrs["failure"] = "screened: <rule>: <value>"`` and ``failure_kind =
"screened"`` (counted toward ``n_trials``, never retried), and the study goes on.

**No form trained twice** (:func:`undeclared`; the twin rule of :mod:`loran_search.search.keys`).
Every candidate form trial records ``user_attrs["form"] = {name, expr, tree, key, interval}``
before anything else, ``key`` = rank, canonical formula, parameter values and training
overrides (:func:`~loran_search.search.keys.form_key`). A proposal whose key a
COMPLETE, PRUNED or configuration-FAIL trial already holds is answered from that trial: COMPLETE
with the same value(s), or PRUNED/FAIL as it ended, with ``user_attrs["duplicate_of"]`` = its
number (the analysis leaves it out of the tables and counts it as deduplicated; it is counted
toward ``n_trials`` as a proposal). Across workers: a RUNNING trial with the key that *started
first* (``datetime_start``, then number) is waited for and then answers; and while a trial that
started first is RUNNING without having written its key yet (it may hold the same one), the
proposal waits for it to write it (at most :data:`DECLARE_TIMEOUT` seconds, less when that
trial's worker on this host is gone). So of two workers that take the same form at the same
moment exactly one trains it; the other waits and takes its value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loran_search import record as R
from loran_search.record import FORM_CHOICE
from loran_search.search.grammar import Form, canonical_expr
from loran_search.search.keys import find_twin, started
from loran_search.search.recovery import worker_gone

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial, Trial

    from loran_search.search.forms import FormSpace

#: Points of the value grid of the ``finite`` rule (besides 0).
FINITE_GRID = 4001
#: ``sup |f'|`` above which the ``finite`` rule reads a form as singular when the symbolic
#: search found no singularity: a float32 entry of ``B·A`` near 1 moves by one ulp
#: (``2⁻²³ ≈ 1.2e-7``), and a slope of 1e8 turns that rounding step into a jump of ~12 in the
#: update, so such a form is not finite in the precision it is trained in.
FINITE_SLOPE = 1e8
#: Seconds between looks at a running twin.
POLL = 0.5
#: Seconds a proposal waits for earlier running proposals to write their form's key.
DECLARE_TIMEOUT = 30.0


def screen(
    form: Form,
    values: Mapping[str, float],
    require: Sequence[tuple[str, float | None]],
    interval: tuple[float, float],
) -> str | None:
    """The refusal of a form (``"<rule>: <value>"``), or ``None`` when every rule passes.

    Uses the symbolic audit (:func:`activations.audit.audit_formula`: ``f(0)``, the
    oscillation-aware grid of ``f'``, the Lipschitz estimate) and a value grid of ``f``
    (module doc, *Screening*).
    """
    rules = dict(require)
    span = f"[{interval[0]:.3g}, {interval[1]:.3g}]"
    if not form.defined:
        return f"finite: the form {form.tree} is undefined (sympy: division by zero or not real)"
    import numpy as np
    import sympy as sp

    from loran_search.activations.audit import audit_formula
    from loran_search.activations.formula import X, compile_expr, parse_formula

    expr = parse_formula(form.expr, list(values))
    if canonical_expr(expr) == X:
        return "identity: the form reduces to f(x) = x, the baseline (LoRA)"
    fixed = canonical_expr(expr.subs({sp.Symbol(k, real=True): v for k, v in values.items()}))
    if fixed.has(X) and sp.diff(fixed, X, 2) == 0:
        slope = sp.diff(fixed, X)
        return (
            f"linear: the form reduces to f(x) = {fixed} at these values, a linear map: "
            f"ΔW = s·f(B·A) is plain LoRA with its step rescaled by f' = {float(slope):.6g} "
            "(inert, nothing non-linear to learn); give the template a non-linear term"
        )
    result = audit_formula(form.expr, dict(values), interval=interval, name=form.name)
    if "starts_at_zero" in rules and not result.starts_at_zero:
        return f"starts_at_zero: f(0) = {result.f0:.4g} ≠ 0, so ΔW = s·f(B·A) ≠ 0 when B = 0"
    if "finite" in rules:
        f = compile_expr(
            expr.subs({sp.Symbol(k, real=True): v for k, v in values.items()}), "numpy"
        )
        xs = np.concatenate([np.linspace(interval[0], interval[1], FINITE_GRID), [0.0]])
        with np.errstate(all="ignore"):
            ys = np.asarray(f(xs), dtype=float) * np.ones_like(xs)
        bad = ~np.isfinite(ys)
        if bad.any():
            return f"finite: f({float(xs[bad][0]):.4g}) = {float(ys[bad][0])} on {span}"
        if not math.isfinite(result.f0):
            return f"finite: f(0) = {result.f0}"
        if result.singularities:
            return f"finite: {result.singularities[0]}"
        if not math.isfinite(result.lipschitz):
            where = next((w for w in result.warnings if w.startswith("f' is not finite")), "")
            return f"finite: f' is not finite on {span}" + (f" ({where})" if where else "")
        if result.lipschitz > FINITE_SLOPE:
            return (
                f"finite: |f'| reaches {result.lipschitz:.4g} on {span} (above {FINITE_SLOPE:g}): "
                "a pole or a near-singularity the symbolic search could not place; a form this "
                "steep is not finite in float32"
            )
    cap = rules.get("max_lipschitz")
    if cap is not None and not result.lipschitz <= cap:
        return f"max_lipschitz: |f'| reaches {result.lipschitz:.4g} on {span} > {cap:g}"
    return None


# ------------------------------------------------------------------------------ the trial


@dataclass
class Verdict:
    """What the form step decided before training.

    Attributes:
        kind: ``screened`` (refused), ``duplicate`` (answered from ``twin``).
        message: The sentence recorded in ``failure`` / ``pruned``.
        state: The twin's state name (a duplicate): ``COMPLETE``, ``PRUNED`` or ``FAIL``.
        values: The twin's values (a COMPLETE duplicate).
        failure_kind: The twin's failure kind (a FAIL duplicate).
        twin: The twin's number.
    """

    kind: str
    message: str
    state: str = "FAIL"
    values: list[float] | None = None
    failure_kind: str | None = None
    twin: int | None = None


def undeclared(trials: Sequence[FrozenTrial], number: int) -> list[FrozenTrial]:
    """RUNNING candidates that started before trial ``number`` and may be a form not declared yet.

    A form trial writes its key right after its parameters are sampled; until then (no
    ``form`` attr, and no ``activation`` param or ``activation`` = ``"form"``) it may hold the
    same key, so a later trial waits for it to say (:func:`before_training`).
    """
    from optuna.trial import TrialState

    me = next((t for t in trials if t.number == number), None)
    mine = started(me) if me is not None else (math.inf, number)
    return [
        t
        for t in trials
        if t.state == TrialState.RUNNING
        and t.number != number
        and started(t) < mine
        and t.user_attrs.get(R.ROLE, R.ROLE_CANDIDATE) == R.ROLE_CANDIDATE
        and not _declared(t)
        and t.params.get(R.PARAM_ACTIVATION, FORM_CHOICE) == FORM_CHOICE
    ]


def _declared(t: FrozenTrial) -> bool:
    """Whether the trial wrote its ``form`` attr (a non-empty mapping)."""
    form = t.user_attrs.get(R.FORM)
    return isinstance(form, Mapping) and bool(form)


def _worker_gone(t: FrozenTrial) -> bool:
    """The twin's worker ran on this host and is gone (its trial will never end by itself)."""
    return worker_gone(t.system_attrs.get(R.WORKER))


def before_training(
    trial: Trial,
    forms: FormSpace,
    name: str,
    values: Mapping[str, Any],
    rank: int,
    training: Mapping[str, Any],
    *,
    role: str,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict | None:
    """Record the form, screen it and look for a twin; ``None``: train it.

    Sets ``user_attrs["form"] = {name, expr, tree, key}`` and (for a candidate) the screen's
    interval. Confirmation trials are neither screened nor deduplicated (their form passed).
    """
    from optuna.trial import TrialState

    form = forms.form(name)
    key = forms.key(name, values, rank, training)
    attr: dict[str, Any] = {"name": form.name, "expr": form.expr, "tree": form.tree, "key": key}
    study = trial.study
    if role != R.ROLE_CANDIDATE:
        trial.set_user_attr(R.FORM, attr)
        return None
    snapshot = study.get_trials(deepcopy=False)
    interval = R.visited_range(snapshot, rank)
    attr["interval"] = list(interval)
    trial.set_user_attr(R.FORM, attr)  # the key is written before the twins are read
    refusal = screen(form, {k: float(v) for k, v in values.items()}, forms.require, interval)
    if refusal is not None:
        return Verdict(R.FAIL_SCREENED, refusal)
    deadline = time.monotonic() + DECLARE_TIMEOUT
    while True:
        trials = study.get_trials(deepcopy=False)
        twin = find_twin(trials, trial.number, key)
        if twin is not None:
            if twin.state != TrialState.RUNNING:
                break  # answer from it
            if _worker_gone(twin):
                return None  # it will never end: train the form here
            sleep(POLL)  # the twin is training: its result answers this proposal
            continue
        waiting = [t for t in undeclared(trials, trial.number) if not _worker_gone(t)]
        if not waiting or time.monotonic() > deadline:
            return None
        sleep(POLL)  # an earlier proposal has not written its form's key yet
    trial.set_user_attr(R.DUPLICATE_OF, int(twin.number))
    said = (
        f"deduplicated: the same canonical formula and parameter values as trial {twin.number} "
        f"({form.expr}); answered from its record, not trained again"
    )
    if twin.state == TrialState.COMPLETE:
        trial.set_user_attr(R.DEDUPLICATED, said)
        return Verdict("duplicate", said, "COMPLETE", list(twin.values), twin=twin.number)
    if twin.state == TrialState.PRUNED:
        return Verdict("duplicate", said, "PRUNED", twin=twin.number)
    kind = str(twin.user_attrs.get(R.FAILURE_KIND))
    return Verdict("duplicate", said, "FAIL", failure_kind=kind, twin=twin.number)
