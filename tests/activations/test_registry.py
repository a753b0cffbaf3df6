"""Registry contract: registration, lookup, parameter checks, plugins; errors checked by message."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import activations
from activations import (
    ActivationError,
    Param,
    get_activation,
    get_spec,
    list_activations,
    load_plugins,
    register_activation,
    resolve_names,
)

pytestmark = pytest.mark.usefixtures("scratch_registry")


def _square(x: torch.Tensor) -> torch.Tensor:
    return x * x


def test_duplicate_names_both_modules() -> None:
    with pytest.raises(ActivationError) as err:
        register_activation("sinter", family="sinter", expr="x")(_square)
    msg = str(err.value)
    assert "'sinter' is already registered by module 'activations.sinter'" in msg
    assert f"module '{__name__}' tried to register it again" in msg
    assert "force=True" in msg


def test_force_replaces_and_can_be_restored() -> None:
    register_activation("scratch_sq", family="custom", expr="x**2")(_square)
    register_activation("scratch_sq", family="custom", expr="x**2", force=True)(_square)
    assert get_spec("scratch_sq").fn is _square


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ActivationError) as err:
        get_activation("sinterr")
    msg = str(err.value)
    assert "Unknown activation 'sinterr'" in msg
    assert "Did you mean 'sinter'" in msg
    assert "loran-search activations list" in msg and "--import MODULE" in msg


def test_unknown_family() -> None:
    with pytest.raises(ActivationError, match=r"Unknown family 'fourir'. Did you mean 'fourier'"):
        list_activations(family="fourir")


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        (
            {"amplitud": 1e-3},
            r"has no parameter 'amplitud'. Did you mean 'amplitude'\? "
            r"Its parameters are: amplitude, frequency",
        ),
        ({"amplitude": 50.0}, r"'sinter.amplitude' = 50.0 is outside its declared range"),
        ({"amplitude": float("nan")}, r"outside its declared range"),
        ({"frequency": "fast"}, r"'sinter.frequency' must be a number, but got 'fast'"),
    ],
)
def test_bad_params(params: dict, pattern: str) -> None:
    with pytest.raises(ActivationError, match=pattern):
        get_activation("sinter", **params)


def test_integer_params_are_checked_and_converted() -> None:
    with pytest.raises(ActivationError, match=r"'legendre.degree' is an integer, but got 2.5"):
        get_activation("legendre", degree=2.5)
    act = get_activation("legendre", degree=3.0)
    assert act.params["degree"] == 3 and isinstance(act.params["degree"], int)
    with pytest.raises(ActivationError, match=r"outside its declared range \[1, 12\]"):
        get_activation("legendre", degree=13)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"default": 1.0, "low": 2.0, "high": 1.0}, r"`low <= high` must hold"),
        ({"default": 1.0, "low": 0.0, "high": 2.0, "log": True}, r"`log=True` needs `low > 0`"),
        ({"default": 3.0, "low": 0.0, "high": 2.0}, r"default 3.0 lies outside \[0.0, 2.0\]"),
        ({"default": 1.5, "low": 1, "high": 2, "integer": True}, r"integer default, low and"),
    ],
)
def test_param_declaration_errors(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ActivationError, match=pattern):
        Param(**kwargs)


def test_signature_must_match_params() -> None:
    with pytest.raises(ActivationError, match=r"do not match the declared params \['a'\]"):
        register_activation(
            "scratch_bad", family="custom", params={"a": Param(1, 0, 2)}, expr="a*x"
        )(_square)


def test_invalid_names() -> None:
    with pytest.raises(ActivationError, match=r"Invalid activation name 'a b'"):
        register_activation("a b", family="custom", expr="x")(lambda x: x)
    with pytest.raises(ActivationError, match=r"Invalid family name 'a.b'"):
        register_activation("ok_name", family="a.b", expr="x")(lambda x: x)


def test_defaults_and_bound_activation_behaviour() -> None:
    act = get_activation("sinter", amplitude=1e-3)
    assert act.params == {"amplitude": 1e-3, "frequency": 1e4}
    assert act.to_dict() == {"name": "sinter", "family": "sinter", "params": act.params}
    clone = pickle.loads(pickle.dumps(act))
    assert clone == act and hash(clone) == hash(act)
    assert get_activation("identity").is_identity and not act.is_identity
    assert repr(act) == "sinter(amplitude=0.001, frequency=10000.0)"


def test_list_filters_and_resolve_names() -> None:
    assert list_activations(pattern="sinter*")[0] == "sinter"
    assert all(n.startswith("sinter") for n in list_activations(pattern="sinter*"))
    assert list_activations() == sorted(list_activations())
    got = resolve_names(["identity", "fourier", "fourier_sine"])
    assert got == ["identity", *list_activations(family="fourier")]
    with pytest.raises(ActivationError, match=r"Unknown activation 'sintre' in study.yaml"):
        resolve_names(["sintre"], where="study.yaml")


def test_spec_json_shape() -> None:
    d = get_spec("swish").to_dict()
    assert d == {
        "name": "swish",
        "family": "baseline",
        "expr": "x*sigmoid(beta*x)",
        "params": {"beta": {"default": 25.0, "low": 0.1, "high": 100.0, "log": True}},
    }
    assert get_spec("legendre").to_dict()["params"]["degree"]["integer"] is True


def test_registration_imports_no_torch() -> None:
    code = (
        "import sys, activations; activations.list_activations(); "
        "activations.get_activation('sinter'); "
        "print(sorted(m for m in ('torch', 'sympy', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _write_plugin(root: Path, module: str, name: str) -> None:
    (root / f"{module}.py").write_text(
        textwrap.dedent(
            f"""
            from activations import Param, register_activation
            from activations._lazy import torch

            @register_activation("{name}", family="plugin_family",
                                 params={{"a": Param(0.5, low=0.0, high=1.0)}},
                                 expr="x + a*x**3")
            def cubic(x, a):
                \"\"\"A plugin activation x + a·x³.\"\"\"
                return x + a * x**3
            """
        )
    )


def test_plugin_module_via_load_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_plugin(tmp_path, "scratch_plugin_mod", "scratch_cubic")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert load_plugins(["scratch_plugin_mod"]) == ["scratch_cubic"]
        y = get_activation("scratch_cubic", a=1.0)(torch.tensor([2.0]))
        assert y.item() == 10.0
        assert "plugin_family" in activations.families()
    finally:
        sys.modules.pop("scratch_plugin_mod", None)


def test_plugin_module_that_does_not_import() -> None:
    with pytest.raises(
        ActivationError,
        match=r"Cannot import activation plugin module "
        r"'no_such_plugin_xyz'.*PYTHONPATH",
    ):
        load_plugins(["no_such_plugin_xyz"])


def test_entry_point_plugins_are_discovered(tmp_path: Path) -> None:
    _write_plugin(tmp_path, "ep_plugin_mod", "ep_cubic")
    dist = tmp_path / "ep_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[loran_search.activations]\nep_cubic = ep_plugin_mod\n")
    code = (
        "import activations; print('ep_cubic' in activations.list_activations(), "
        "activations.get_spec('ep_cubic').module)"
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["True", "ep_plugin_mod"]


def test_broken_entry_point_is_reported(tmp_path: Path) -> None:
    dist = tmp_path / "bad_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[loran_search.activations]\nbad = missing_mod_xyz\n")
    code = "import activations; activations.list_activations()"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": ""},
    )
    assert out.returncode != 0
    assert "The activation plugin entry point 'bad' (missing_mod_xyz)" in out.stderr
    assert "Fix or uninstall that package" in out.stderr
