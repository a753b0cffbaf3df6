"""Peer arms in a study: the ``method`` param, validate's refusals, the record, the peers report.

The training function is a peer-aware fake defined here (no model): each arm has a made-up
accuracy so that the report's ordering and paired comparisons are known in advance.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest

from loran_search import record as R
from loran_search.config import ConfigError
from loran_search.search.space import build_space
from loran_search.search.study import open_study
from loran_search.search.validate import load_config_text, validate_file
from loran_search.search.workers import run_worker

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")

#: Per-arm accuracy of the fake (val; a held-out split is 0.02 lower).
ACCURACY = {"loran": 0.55, "dora": 0.75, "hira": 0.60, "rslora": 0.58, "identity": 0.50}
N_EXAMPLES = 40

STUDY = """\
study:
  name: arms
  storage: {storage}
  metric: accuracy
  direction: maximize
  sampler: {{name: grid}}
  pruner: {{name: none}}
  n_trials: 3
  seeds: [0]
  baseline: true
  save_adapters: none
  report: false
  confirm: {confirm}
model: {{name: glassllm, quantization: {quantization}}}
task: {{name: bbc-news, train_size: 16, eval_size: {n}}}
training: {{max_steps: 4, eval_every: 0}}
search:
  methods: {methods}
  match: {match}
  activations: [sinter]
  rank: [4]
  params:
    sinter.amplitude: 1.0e-2
{extra}"""


def study(tmp_path: Path, **kw: Any) -> str:
    values = {
        "storage": f"sqlite:///{tmp_path / 'arms.db'}",
        "confirm": "{top_k: 3, seeds: [100, 101], split: test}",
        "quantization": "none",
        "methods": "[loran, dora, hira]",
        "match": "rank",
        "n": N_EXAMPLES,
        "extra": "",
    }
    values.update(kw)
    return STUDY.format(**values)


def fake(
    cfg: Any,
    *,
    activation: str,
    activation_params: dict[str, float],
    rank: int,
    seed: int,
    eval_split: str | None = None,
    on_eval: Any = None,
    **kw: Any,
) -> dict[str, Any]:
    """A peer-aware fake ``run_training``: logs its keywords, returns a made-up result."""
    with open(os.environ["ARMS_LOG"], "a") as fh:
        fh.write(json.dumps({"activation": activation, "rank": rank, **kw}) + "\n")
    method = kw.get("method", "loran")
    arm = activation if method == "loran" and activation == "identity" else method
    split = eval_split or cfg.task.eval_split
    acc = ACCURACY[arm] - (0.02 if split != "val" else 0.0)
    k = round(acc * N_EXAMPLES)
    examples = [
        {"id": f"x:{split}:{i}", "gold": "a", "pred": "a", "correct": int(i < k),
         "gold_logprob": -1.0 + acc}
        for i in range(N_EXAMPLES)
    ]  # fmt: skip
    trained = rank + (1 if kw.get("match") == "params" else 0)
    n_params = 1000 if method == "loran" else 1100
    return {
        "metrics": {"accuracy": k / N_EXAMPLES},
        "eval_split": split,
        "examples": examples,
        "stability": {"diverged": False, "grad_norm_max": 1.0, "loss_spikes": 0},
        "cost": {
            "train_seconds": 2.0 if method == "loran" else 3.0,
            "peak_memory_mb": 100.0,
            "trainable_params": n_params,
            **({"adapter_rank": trained} if method != "loran" else {}),
        },
        "history": [{"step": s, "loss": 1.0} for s in range(1, 5)],
    }


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("LORAN_SEARCH_TRAIN_FN", f"{Path(__file__)}:fake")
    monkeypatch.setenv("ARMS_LOG", str(log))
    monkeypatch.chdir(tmp_path)
    return log


def _run(text: str) -> optuna.Study:
    cfg = load_config_text(text)
    handle = open_study(cfg, log=lambda m: None)
    from loran_search.search.confirm import confirm_setup

    run_worker(handle, log=lambda m: None, confirm=confirm_setup(cfg))
    return handle.study


def test_default_methods_add_no_param_and_keep_the_space(tmp_path: Path) -> None:
    text = study(tmp_path, methods="[loran]", extra="")
    space = build_space(load_config_text(text))
    assert not space.has_methods
    assert "method" not in space.describe()
    assert all("method" not in p for p in space.grid())
    assert "method" not in space.baseline_params(4)


def test_grid_baseline_and_configurations_of_peer_arms(tmp_path: Path) -> None:
    text = study(
        tmp_path, methods="[loran, dora, hira]", extra="    hira.init: [zero_b, gaussian]\n"
    )
    space = build_space(load_config_text(text))
    assert space.has_methods and space.describe()["method"] == ["loran", "dora", "hira"]
    grid = space.grid()
    assert grid == [
        {"method": "loran", "activation": "sinter", "rank": 4},
        {"method": "dora", "rank": 4},
        {"method": "hira", "rank": 4, "hira.init": "zero_b"},
        {"method": "hira", "rank": 4, "hira.init": "gaussian"},
    ]
    assert space.baseline_params(4) == {"method": "loran", "activation": "identity", "rank": 4}
    tc = space.config_of({"method": "hira", "rank": 4, "hira.init": "gaussian"})
    assert (tc.method, tc.activation, tc.rank, tc.method_params) == (
        "hira",
        "hira",
        4,
        {"init": "gaussian"},
    )
    assert space.config_of({"method": "hira", "rank": 4}) is None  # a searched setting missing
    assert space.first_configuration().method == "loran"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"methods": "[loran, peanut]", "quantization": "nf4"},
            "PEANuT (peanut) cannot run on a base quantized to nf4: peft 0.21.2 has no "
            "bitsandbytes layer for it",
        ),
        ({"methods": "[loran, delora]", "quantization": "int8"}, "Use `model.quantization: none`"),
        ({"methods": "[loran, dorra]"}, "Unknown method 'dorra'. Did you mean 'dora'?"),
        ({"methods": "[dora, hira]"}, "The methods do not include loran, but study.baseline is on"),
        ({"methods": "[loran, dora, dora]"}, "Method 'dora' is listed twice"),
        (
            {"methods": "[loran, dora]", "extra": "    hira.init: gaussian\n"},
            "'hira.init' sets a setting of method 'hira', which is not in search.methods",
        ),
        (
            {"methods": "[loran, peanut]", "extra": "    peanut.depht: 1\n"},
            "Method 'peanut' has no setting 'depht'. Did you mean 'depth'?",
        ),
        (
            {"methods": "[loran, peanut]", "extra": "    peanut.depth: 9\n"},
            "The value 9 of 'peanut.depth' is outside its declared range [0, 4]",
        ),
        (
            {"methods": "[loran, hira]", "extra": "    hira.init: uniform\n"},
            "'hira.init' takes one of zero_b, gaussian",
        ),
        ({"match": "parameters"}, "`match` must be one of rank, params"),
    ],
)
def test_validate_refuses_impossible_arms_with_the_reason(
    tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(study(tmp_path, **overrides))
    errors = validate_file(path, environment=False)
    assert any(message in m for _, m in errors), errors
    with pytest.raises(ConfigError):
        load_config_text(path.read_text(), environment=False)


def test_a_study_with_peer_arms_records_and_reports_them(tmp_path: Path, fake_env: Path) -> None:
    st = _run(study(tmp_path, match="params"))
    calls = [json.loads(line) for line in fake_env.read_text().splitlines()]
    # LoRAN trials pass no peer keywords (substitutes that know no peers still work)
    loran = [c for c in calls if "method" not in c]
    assert {c["activation"] for c in loran} == {"sinter", "identity"}
    assert not any("match" in c or "method_params" in c for c in loran)
    peers = [c for c in calls if "method" in c]
    assert {c["method"] for c in peers} == {"dora", "hira"}
    assert all(c["match"] == "params" and c["activation"] == "identity" for c in peers)
    trials = {
        (t.params.get("method"), t.user_attrs["role"]): t
        for t in st.get_trials()
        if t.state == optuna.trial.TrialState.COMPLETE
    }
    dora = trials[("dora", R.ROLE_CANDIDATE)]
    assert dora.params == {"method": "dora", "rank": 4}
    assert dora.user_attrs[R.ACTIVATION_SPEC] == {"name": "dora", "family": "method", "params": {}}
    assert dora.user_attrs[R.METHOD] == {"name": "dora", "rank": 4, "match": "params", "params": {}}
    assert dora.user_attrs[R.COST]["adapter_rank"] == 5
    assert ("dora", R.ROLE_CONFIRM) in trials and ("loran", R.ROLE_CONFIRM_BASELINE) in trials

    from loran_search.analysis.peers import head_to_head, peers_answer, peers_table
    from loran_search.analysis.report import analyse

    a = analyse(st)
    table = peers_table(a)
    assert table["arm"].iloc[0].startswith("QLoRA (identity) r=4")
    # the reference's metric is the held-out one its confirmed arms were paired with
    assert table["evidence"].iloc[0] == "confirmation"
    assert table["metric_mean"].iloc[0] == pytest.approx(19 / 40)  # 0.48 on test, 40 examples
    row = table[table["arm"] == "dora() r=4"].iloc[0]
    assert row["kind"] == "peer" and row["evidence"] == "confirmation"
    assert row["adapter_rank"] == 5 and row["params_vs_loran"] == pytest.approx(1.1)
    assert row["seconds_per_step"] == pytest.approx(0.75)
    assert row["gain"] == pytest.approx(0.25)  # 0.73 − 0.48 on test
    h2h = head_to_head(a)
    assert h2h is not None and h2h["phase"] == "confirmation"
    assert h2h["loran"]["config"].startswith("sinter(") and h2h["peer"]["config"] == "dora() r=4"
    assert h2h["comparison"].gain == pytest.approx(-0.2)  # LoRAN's 0.53 − DoRA's 0.73
    text = peers_answer(a)
    assert text is not None and "**Best arm: dora() r=4** (peer)" in text
    # pre-specified by the search gains, tested on the confirmation inside its Holm family
    # (issue 19); with 2 seeds (1 df) a 20-point difference is not distinguishable
    assert (
        "paired directly** (pre-specified (each kind's best by its search gain), held-out "
        "confirmation, test split; Holm-adjusted p = " in text
    )
    assert "over 4 confirmation tests, this one included; 2 seeds × 40 examples)" in text
    assert "paired t-test on 2 seed means, 1 df" in text
    assert "**not distinguishable** at this design's MDE of " in text
    assert "dora() r=4 1.1× (trained at r = 5)" in text
    assert text in a.verdict
    stability = next(line for line in a.verdict if line.startswith("Most stable family"))
    assert stability.startswith("Most stable family: **the peer methods (family `method`")
    # issue 22: peers.csv / peers.json beside configurations.csv, which gains method and
    # trainable_params after its own columns
    from loran_search.analysis.report import write_outputs

    out = tmp_path / "report"
    write_outputs(a, out, ("csv", "json"))
    peers_csv = pd.read_csv(out / "peers.csv")
    assert list(peers_csv.columns) == list(table.columns)
    assert peers_csv["arm"].tolist() == table["arm"].tolist()
    peers_json = json.loads((out / "peers.json").read_text())
    assert [r["arm"] for r in peers_json] == table["arm"].tolist()
    dora_json = next(r for r in peers_json if r["arm"] == "dora() r=4")
    assert dora_json["trainable_params"] == 1100 and dora_json["adapter_rank"] == 5
    configs = pd.read_csv(out / "configurations.csv")
    assert list(configs.columns[-2:]) == ["method", "trainable_params"]
    by_config = configs.set_index("config")
    assert by_config.loc["dora() r=4", "method"] == "dora"
    assert by_config.loc["dora() r=4", "trainable_params"] == 1100
    sinter = next(c for c in by_config.index if c.startswith("sinter("))
    assert by_config.loc[sinter, "method"] == "loran"
    assert by_config.loc[sinter, "trainable_params"] == 1000


def test_a_loran_only_report_has_no_peers_line(tmp_path: Path, fake_env: Path) -> None:
    st = _run(study(tmp_path, methods="[loran]", confirm="false"))
    from loran_search.analysis.peers import peers_answer, peers_table
    from loran_search.analysis.report import analyse

    a = analyse(st)
    assert peers_answer(a) is None and peers_table(a).empty
    assert all("method" not in t.params for t in st.get_trials())
