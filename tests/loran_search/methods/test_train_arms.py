"""A peer arm through ``run_training``: the same trainer, data, evaluation and cost record."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loran_search import train
from loran_search.config import ModelSection, StudyConfig, TaskSection, TrainingSection
from loran_search.train import TrainingError, run_training


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAN_SEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "loran-cache"))
    yield
    mp.undo()
    train.clear_cache()


def _cfg(quantization: str) -> StudyConfig:
    return StudyConfig(
        model=ModelSection(name="glassllm", quantization=quantization),
        task=TaskSection(name="bbc-news", max_length=40, train_size=16, eval_size=6),
        training=TrainingSection(max_steps=3, learning_rate=5e-3, batch_size=4, eval_every=0),
    )


@pytest.mark.parametrize(("method", "quantization"), [("dora", "nf4"), ("peanut", "none")])
def test_a_peer_trains_through_run_training_with_matched_parameters(method, quantization):
    cfg = _cfg(quantization)
    kw = {"activation": "identity", "activation_params": {}, "seed": 0, "progress": False}
    loran = run_training(cfg, rank=4, **kw)
    peer = run_training(cfg, rank=4, method=method, match="params", **kw)
    assert peer.status == "completed" and "accuracy" in peer.metrics
    assert all(h["grad_norm"] > 0 for h in peer.history)
    assert len(peer.examples) == 6 and peer.mechanism == {}  # no LoRAN layer to measure
    assert peer.cost["loran_trainable_params"] == loran.cost["trainable_params"]
    # glassllm: q_proj 128 → 128, v_proj 128 → 64 (4 layers); the matched rank is the closest
    from loran_search.methods import matched_rank

    shapes = [(128, 128), (128, 64)] * 4
    want = matched_rank(method, shapes, 4)
    assert peer.cost["adapter_rank"] == want.rank
    assert peer.cost["trainable_params"] == want.params
    assert peer.run["method"] == method
    # the cached base is the pretrained model again (the peer's layers were removed)
    again = run_training(cfg, rank=4, **kw)
    assert again.history[0]["loss"] == pytest.approx(loran.history[0]["loss"])


def test_an_unknown_setting_is_a_training_error_before_training():
    with pytest.raises(TrainingError, match="has no setting 'depht'"):
        run_training(
            _cfg("none"),
            activation="identity",
            activation_params={},
            rank=4,
            seed=0,
            progress=False,
            method="peanut",
            method_params={"depht": 1},
        )
