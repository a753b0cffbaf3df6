"""The form section speaks to the verdict through facts, whichever parameter the forms sweep.

Each form of a form search is its own activation, so the per-activation statements (where along
the amplitude training diverges, parameter importance) would come once per form; the form
section contributes the forms' names and the verdict and the importance say it once for all of
them. With the frequency swept the stability axis is ``A·ω``: the forms' statement says so.
"""

from __future__ import annotations

from collections.abc import Iterator

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from loran_search import record as R
from loran_search.activations import unregister
from loran_search.analysis.report import analyse
from tests.loran_search.analysis.conftest import BASE8, new_study

FORMS = {
    "form_t20verdicta": "x + amplitude*sin(frequency*x)",
    "form_t20verdictb": "x + amplitude*tanh(frequency*x)",
}


@pytest.fixture
def forms_unregistered() -> Iterator[None]:
    yield
    for name in FORMS:  # a name never registered is left as it is
        unregister(name)


def add_form(study: optuna.Study, name: str, amplitude: float, frequency: float) -> None:
    """One COMPLETE form trial at rank 8 on seeds 0-2, stable, a little above QLoRA."""
    expr = FORMS[name]
    params = {"amplitude": amplitude, "frequency": frequency}
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE,
            value=0.75,
            params={"rank": 8, "form.amplitude": amplitude, "form.frequency": frequency},
            distributions={
                "rank": CategoricalDistribution((4, 8, 16)),
                "form.amplitude": FloatDistribution(1e-4, 10.0, log=True),
                "form.frequency": FloatDistribution(1e-1, 1e5, log=True),
            },
            user_attrs={
                R.RECORD_VERSION_KEY: 1,
                R.ROLE: R.ROLE_CANDIDATE,
                R.ACTIVATION_SPEC: {"name": name, "family": "form", "params": params, "expr": expr},
                R.FORM: {"name": name, "expr": expr, "tree": expr, "key": name},
                R.SEED_METRICS: {str(s): {"accuracy": v + 0.01} for s, v in BASE8.items()},
                R.STABILITY: {
                    str(s): {"diverged": False, "grad_norm_max": 1.0, "loss_spikes": 0}
                    for s in BASE8
                },
                R.COST: {"train_seconds": 10.0},
            },
        )
    )


@pytest.mark.parametrize(
    ("swept", "word", "values"),
    [
        ("amplitude", "amplitude", "amplitudes"),
        ("frequency", "amplitude × frequency", "amplitudes and frequencies"),
    ],
)
def test_the_forms_that_never_diverged_are_one_statement(
    forms_unregistered: None, swept: str, word: str, values: str
) -> None:
    study, b = new_study()
    b.add("identity", 8, BASE8)
    for name in FORMS:
        for x in (1e-3, 1e-2, 1e-1):
            amplitude, frequency = (x, 1.0) if swept == "amplitude" else (0.1, 1e3 * x)
            add_form(study, name, amplitude, frequency)
    a = analyse(study)
    assert a.forms is not None and a.forms.names == set(FORMS)
    axes = {th["axis"] for th in a.thresholds if th["activation"] in FORMS}
    assert axes == {"amplitude" if swept == "amplitude" else "amp_freq"}
    together = [s for s in a.verdict if s.startswith("**Forms: no divergence")]
    assert together == [
        f"**Forms: no divergence at any {word} tested** (2 forms, each at the {values} it was "
        "trained with; the form table below lists them)."
    ]
    assert not any(f"**{name}:" in s for s in a.verdict for name in FORMS)
    assert (
        "Parameter importance: no searched parameter varies within any of 2 forms (each form "
        "is its own activation; the form itself is the searched choice)."
    ) in a.notes
    assert not any(f"({name})" in n for n in a.notes for name in FORMS)
    assert a.summary[-1].startswith("**Forms**: 6 proposed (2 distinct canonical forms)")


def test_one_form_keeps_its_own_statement(forms_unregistered: None) -> None:
    study, b = new_study()
    b.add("identity", 8, BASE8)
    for x in (1e-3, 1e-2):
        add_form(study, "form_t20verdicta", 0.1, 1e3 * x)
    a = analyse(study)
    assert not any(s.startswith("**Forms: no divergence") for s in a.verdict)
    assert any(
        s.startswith("**form_t20verdicta: no divergence at any amplitude × frequency tested**")
        for s in a.verdict
    )
