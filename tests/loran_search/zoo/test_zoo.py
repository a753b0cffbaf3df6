"""The in-process networks: reproducible pretraining (same seed → same weights' hash), the
digits data, CartPole's dynamics and the REINFORCE estimator."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from loran_search import assets
from loran_search.zoo import cartpole, digits


@pytest.fixture(scope="module", autouse=True)
def _asset_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAN_SEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "loran-cache"))
    yield
    mp.undo()


def weights_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return digits.read_digits(
        assets.source_dir(assets.ASSETS["digits"]) / "datasets/data/digits.csv.gz"
    )


def test_digits_file(data: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = data
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert sorted(set(labels.tolist())) == list(range(10))
    from sklearn.datasets import load_digits  # the same data as scikit-learn's loader

    ref = load_digits()
    np.testing.assert_array_equal(labels, ref.target)
    np.testing.assert_allclose(images.reshape(-1, 64), ref.data / 16.0, rtol=0, atol=1e-7)


@pytest.mark.parametrize("arch", ["cnn", "vit"])
def test_digits_pretraining_is_reproducible(arch: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = data
    a, info = digits.pretrain(arch, images, labels, seed=3, epochs=2)
    b, _ = digits.pretrain(arch, images, labels, seed=3, epochs=2)
    c, _ = digits.pretrain(arch, images, labels, seed=4, epochs=2)
    assert weights_hash(a) == weights_hash(b) != weights_hash(c)
    assert info["classes"] == [0, 1, 2, 3, 4] and info["n_train"] + info["n_heldout"] == 901
    assert info["heldout_accuracy"] > 0.3  # above chance (0.2) after two epochs


def test_cartpole_pretraining_is_reproducible() -> None:
    kw = {"iterations": 3, "episodes": 4, "max_episode_steps": 40}
    a, info = cartpole.pretrain(seed=5, **kw)
    b, _ = cartpole.pretrain(seed=5, **kw)
    c, _ = cartpole.pretrain(seed=6, **kw)
    assert weights_hash(a) == weights_hash(b) != weights_hash(c)
    assert info["iterations_run"] == 3 and 0 < info["check_mean_return"] <= 40


def test_digits_cnn_asset_is_reproducible() -> None:
    first = assets.ensure("digits-cnn", force=True, progress=False)
    man1 = assets.read_manifest("digits-cnn")
    config = json.loads((first / "config.json").read_text())
    assert config["loran_kind"] == "digits_cnn"
    assert config["pretraining"]["heldout_accuracy"] > 0.95  # recorded with the weights
    assets.ensure("digits-cnn", force=True, progress=False)
    man2 = assets.read_manifest("digits-cnn")
    assert man1 is not None and man2 is not None
    assert man1["outputs"]["model.safetensors"] == man2["outputs"]["model.safetensors"]


@pytest.mark.slow
def test_cartpole_asset_is_reproducible() -> None:
    assets.ensure("cartpole-mlp", force=True, progress=False)
    first = assets.read_manifest("cartpole-mlp")
    assets.ensure("cartpole-mlp", force=True, progress=False)
    second = assets.read_manifest("cartpole-mlp")
    assert first is not None and second is not None
    assert first["outputs"]["model.safetensors"] == second["outputs"]["model.safetensors"]
    config = json.loads((assets.asset_dir("cartpole-mlp") / "config.json").read_text())
    assert config["pretraining"]["check_mean_return"] >= 490


def test_dynamics_are_set_and_checked() -> None:
    env = cartpole.make_env({"length": 2.0, "gravity": 20.0}, 50)
    inner = env.unwrapped
    assert inner.length == 2.0 and inner.gravity == 20.0
    assert inner.polemass_length == pytest.approx(0.1 * 2.0)
    with pytest.raises(ValueError, match="unknown CartPole constant 'lenght'"):
        cartpole.make_env({"lenght": 1.0})
    with pytest.raises(ValueError, match="must be > 0"):
        cartpole.make_env({"gravity": 0.0})


def test_greedy_returns_depend_on_the_seed_only() -> None:
    torch.manual_seed(0)
    policy = cartpole.PolicyMLP()
    first = cartpole.evaluate(policy, [11, 12, 13], {"length": 1.0}, 60)
    assert first == cartpole.evaluate(policy, [11, 12, 13], {"length": 1.0}, 60)
    assert all(1 <= r <= 60 for r in first)


def test_reinforce_value_and_gradient() -> None:
    """Value = 1 − mean R / T; ∂/∂ log π(a_{i,t}) = −(G_{i,t} − b_{i,t}) / (N·T)."""
    lengths = [3, 1, 2]
    logps = [torch.zeros(n, requires_grad=True) for n in lengths]
    roll = cartpole.Rollout([float(n) for n in lengths], logps)
    loss = cartpole.reinforce_loss(roll, max_episode_steps=4)
    assert float(loss) == pytest.approx(1 - 2.0 / 4)
    loss.backward()
    togo = [[3, 2, 1], [1], [2, 1]]  # G_{i,t} = T_i − t
    for i, g in enumerate(togo):
        for t, gi in enumerate(g):
            others = [togo[j][t] if t < len(togo[j]) else 0 for j in range(3) if j != i]
            b = sum(others) / 2
            assert float(logps[i].grad[t]) == pytest.approx(-(gi - b) / (3 * 4))
    with pytest.raises(ValueError, match="≥ 2 episodes"):
        cartpole.reinforce_loss(cartpole.Rollout([1.0], [torch.zeros(1)]), 4)
