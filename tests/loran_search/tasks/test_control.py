"""The CartPole control task: episode seeds, REINFORCE loss, greedy per-episode returns."""

from __future__ import annotations

import pytest
import torch

from loran_search.config import TaskSection
from loran_search.kinds import build_network
from loran_search.tasks.control import ControlTask, env_problems, split_seeds
from loran_search.tasks.data import TaskError


def _task(**kw: object) -> ControlTask:
    base = {"train_size": 6, "eval_size": 4, "env": {"length": 1.5, "max_episode_steps": 30}}
    return ControlTask(TaskSection(name="cartpole", type="control", **{**base, **kw}))


def test_seeds_are_fixed_and_disjoint() -> None:
    task = _task()
    assert task.train_examples == split_seeds("train", 6, 0)
    assert task.eval_seeds == split_seeds("val", 4, 0)
    test = _task(eval_split="test")
    assert not set(test.eval_seeds) & set(task.eval_seeds)
    assert not set(task.train_examples) & set(task.eval_seeds)
    assert task.eval_ids == [f"episode/{s}" for s in task.eval_seeds]
    assert _task(split_seed=1).eval_seeds != task.eval_seeds
    assert task.dynamics == {"length": 1.5} and task.max_episode_steps == 30


def test_evaluation_is_deterministic_and_averages_the_episodes() -> None:
    task = _task()
    torch.manual_seed(0)
    policy = build_network("cartpole-mlp").eval()
    metrics, examples = task.evaluate_examples(policy)
    assert [e["id"] for e in examples] == task.eval_ids
    assert metrics["mean_return"] == pytest.approx(sum(e["return"] for e in examples) / 4)
    assert task.evaluate_examples(policy) == (metrics, examples)
    assert all(1 <= e["return"] <= 30 for e in examples)


def test_loss_is_the_shortfall_with_a_policy_gradient() -> None:
    task = _task()
    torch.manual_seed(0)
    policy = build_network("cartpole-mlp")
    torch.manual_seed(1)
    loss = task.loss(policy, task.train_examples[:4])
    assert 0.0 <= float(loss) <= 1.0
    loss.backward()
    assert any(float(p.grad.abs().sum()) > 0 for p in policy.parameters())
    torch.manual_seed(1)
    assert float(task.loss(policy, task.train_examples[:1])) >= 0  # a lone seed gets a partner


def test_bad_settings_are_refused() -> None:
    assert env_problems({"length": 2.0, "max_episode_steps": 100}) == []
    problems = env_problems({"lenght": 2.0, "gravity": -1, "max_episode_steps": 2.5})
    assert len(problems) == 3 and "not a CartPole setting" in problems[0]
    with pytest.raises(TaskError, match=r"set task\.name: cartpole"):
        ControlTask(TaskSection(name="mountaincar", type="control"))
    with pytest.raises(TaskError, match="not a split"):
        _task(eval_split="validation")
