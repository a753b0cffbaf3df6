"""Gymnasium's CartPole-v1 with settable dynamics, an MLP policy and REINFORCE with a baseline.

Environment: ``gymnasium.make("CartPole-v1", max_episode_steps=T)`` (reward 1 per step, at most
``T = 500`` by default) whose physical constants are set on the unwrapped environment from
``dynamics`` (:data:`DYNAMICS`: ``gravity`` 9.8, ``masscart`` 1.0, ``masspole`` 0.1, ``length``
0.5 — half the pole's length —, ``force_mag`` 10.0; ``total_mass`` and ``polemass_length`` are
recomputed). An episode is fixed by its seed: ``env.reset(seed=s)`` draws the start state.

Policy (:class:`PolicyMLP`): ``fc1`` (4 → 64) → tanh → ``fc2`` (64 → 64) → tanh → ``head``
(64 → 2 logits); actions are sampled from ``softmax(logits)`` in training and taken greedily
(``argmax``) in evaluation, so an evaluation episode's return depends only on the policy and the
seed.

The policy-gradient estimator (:func:`reinforce_loss`). For ``N ≥ 2`` sampled episodes with
``T_i`` steps, rewards ``r_{i,t} = 1`` and returns ``R_i = Σ_t r_{i,t}``, the objective is the
expected *shortfall* ``J = 1 − E[R]/T`` (0 for a perfect policy, in ``[0, 1]``). With the
reward-to-go ``G_{i,t} = Σ_{t' ≥ t} r_{i,t'}`` (``G_{i,t} = 0`` for ``t ≥ T_i``) and the
leave-one-out baseline ``b_{i,t} = (Σ_{j≠i} G_{j,t})/(N − 1)`` (independent of episode ``i``,
so the estimate stays unbiased), the score-function estimate of ``∇J`` is

    ĝ = −(1/(N·T)) Σ_i Σ_{t < T_i} (G_{i,t} − b_{i,t}) ∇ log π(a_{i,t} | s_{i,t}).

:func:`reinforce_loss` returns ``Ĵ + S − stopgrad(S)`` with ``Ĵ = 1 − mean_i R_i / T`` and
``S = −(1/(N·T)) Σ_i Σ_t (G_{i,t} − b_{i,t}) log π(a_{i,t} | s_{i,t})``: its value is the sample
shortfall (positive, so a run's loss curve, divergence and spike telemetry read as for any
loss) and its gradient is ``ĝ``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

#: The CartPole constants a study may set, with Gymnasium's defaults.
DYNAMICS: dict[str, float] = {
    "gravity": 9.8,
    "masscart": 1.0,
    "masspole": 0.1,
    "length": 0.5,
    "force_mag": 10.0,
}
MAX_EPISODE_STEPS = 500


def make_env(dynamics: Mapping[str, float] | None = None, max_episode_steps: int = 500) -> Any:
    """A ``CartPole-v1`` environment with ``dynamics`` (module docstring) set.

    Raises:
        ValueError: An unknown constant or a non-positive value.
    """
    import gymnasium as gym

    env = gym.make("CartPole-v1", max_episode_steps=int(max_episode_steps))
    inner = env.unwrapped
    for key, value in (dynamics or {}).items():
        if key not in DYNAMICS:
            raise ValueError(f"unknown CartPole constant {key!r}; known: {', '.join(DYNAMICS)}")
        if not float(value) > 0:
            raise ValueError(f"CartPole constant {key!r} must be > 0 (got {value!r})")
        setattr(inner, key, float(value))
    inner.total_mass = inner.masspole + inner.masscart
    inner.polemass_length = inner.masspole * inner.length
    return env


class PolicyMLP(nn.Module):
    """The CartPole policy: observations ``(B, 4)`` → action logits ``(B, 2)``."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, 2)

    def forward(self, observations: Tensor) -> Tensor:
        """Action logits of a batch of observations."""
        h = torch.tanh(self.fc1(observations))
        h = torch.tanh(self.fc2(h))
        return self.head(h)


@dataclass
class Rollout:
    """Episodes played by a policy.

    Attributes:
        returns: ``R_i`` per episode (in the order of the seeds).
        logps: Per episode, the ``(T_i,)`` tensor of ``log π(a_t | s_t)`` (empty when greedy).
    """

    returns: list[float]
    logps: list[Tensor]


def rollout(
    policy: nn.Module,
    seeds: Sequence[int],
    dynamics: Mapping[str, float] | None = None,
    max_episode_steps: int = MAX_EPISODE_STEPS,
    *,
    greedy: bool,
    generator: torch.Generator | None = None,
) -> Rollout:
    """Play one episode per seed, all at once (one batched policy forward per time step).

    Args:
        policy: Maps ``(B, 4)`` float32 observations to ``(B, 2)`` logits.
        seeds: Episode seeds (``env.reset(seed=s)``).
        dynamics: CartPole constants (module docstring).
        max_episode_steps: The time limit ``T``.
        greedy: ``argmax`` actions without gradients (evaluation); otherwise actions are
            sampled and their log-probabilities kept for the gradient.
        generator: The sampling generator (``None``: torch's global one, seeded by the run).
    """
    device = next(policy.parameters()).device
    envs = [make_env(dynamics, max_episode_steps) for _ in seeds]
    obs = [env.reset(seed=int(s))[0] for env, s in zip(envs, seeds, strict=True)]
    alive = list(range(len(seeds)))
    returns = [0.0] * len(seeds)
    logps: list[list[Tensor]] = [[] for _ in seeds]
    with torch.set_grad_enabled(not greedy and torch.is_grad_enabled()):
        while alive:
            x = torch.from_numpy(np.stack([obs[i] for i in alive]).astype(np.float32))
            logits = policy(x.to(device)).float()  # (B_alive, 2)
            if greedy:
                actions = logits.argmax(-1).tolist()
            else:
                logp_all = torch.log_softmax(logits, dim=-1)
                picked = torch.multinomial(logp_all.exp().detach().cpu(), 1, generator=generator)
                picked = picked.squeeze(-1)
                lp = logp_all.gather(-1, picked.to(device).unsqueeze(-1)).squeeze(-1)
                actions = picked.tolist()
            still = []
            for j, i in enumerate(alive):
                obs[i], reward, terminated, truncated, _ = envs[i].step(int(actions[j]))
                returns[i] += float(reward)
                if not greedy:
                    logps[i].append(lp[j])
                if not (terminated or truncated):
                    still.append(i)
            alive = still
    for env in envs:
        env.close()
    stacked = [torch.stack(lp) if lp else torch.zeros(0) for lp in logps]
    return Rollout(returns, stacked)


def reinforce_loss(roll: Rollout, max_episode_steps: int) -> Tensor:
    """``Ĵ + S − stopgrad(S)``: value the sample shortfall, gradient ``ĝ`` (module docstring).

    Raises:
        ValueError: Fewer than two episodes (the leave-one-out baseline needs two).
    """
    n = len(roll.returns)
    if n < 2:
        raise ValueError("REINFORCE with a leave-one-out baseline needs ≥ 2 episodes per batch")
    horizon = max(len(lp) for lp in roll.logps)
    togo = torch.zeros(n, horizon, dtype=torch.float64)
    for i, lp in enumerate(roll.logps):
        steps = len(lp)  # CartPole: reward 1 per step, so G_{i,t} = T_i − t
        togo[i, :steps] = torch.arange(steps, 0, -1, dtype=torch.float64)
    baseline = (togo.sum(0, keepdim=True) - togo) / (n - 1)  # b_{i,t}: leave-one-out mean
    adv = (togo - baseline).float()
    surrogate = torch.zeros((), device=roll.logps[0].device)
    for i, lp in enumerate(roll.logps):
        surrogate = surrogate - (adv[i, : len(lp)].to(lp.device) * lp).sum()
    surrogate = surrogate / (n * max_episode_steps)
    shortfall = 1.0 - float(np.mean(roll.returns)) / max_episode_steps
    return shortfall + surrogate - surrogate.detach()


def evaluate(
    policy: nn.Module,
    seeds: Sequence[int],
    dynamics: Mapping[str, float] | None = None,
    max_episode_steps: int = MAX_EPISODE_STEPS,
) -> list[float]:
    """Greedy returns of ``policy``, one per seed (model left in eval mode)."""
    policy.eval()
    with torch.no_grad():
        return rollout(policy, seeds, dynamics, max_episode_steps, greedy=True).returns


#: Seeds of the episodes the pretraining checks itself on (disjoint from every task's seeds).
PRETRAIN_CHECK_SEEDS = tuple(range(900_000, 900_032))


def pretrain(
    *,
    seed: int = 0,
    iterations: int = 300,
    episodes: int = 16,
    lr: float = 1e-2,
    target: float = 490.0,
    max_episode_steps: int = MAX_EPISODE_STEPS,
) -> tuple[PolicyMLP, dict[str, Any]]:
    """REINFORCE with the leave-one-out baseline at the default dynamics, seeded.

    Every ``10`` iterations (and at the last) the greedy policy plays the 32
    :data:`PRETRAIN_CHECK_SEEDS` episodes; training stops once their mean return reaches
    ``target``. Training episodes of iteration ``k`` use seeds ``seed·10⁶ + k·episodes + j``,
    actions are sampled from a ``torch.Generator`` seeded with ``seed``; one torch thread, so
    the same arguments give the same weights bit for bit.

    Returns:
        ``(policy in eval mode, info)``, info with the settings, ``iterations_run`` and
        ``check_mean_return`` (the last check).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        policy = PolicyMLP()
        opt = torch.optim.Adam(policy.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        check = 0.0
        done = 0
        for k in range(iterations):
            policy.train()
            seeds = [seed * 1_000_000 + k * episodes + j for j in range(episodes)]
            roll = rollout(policy, seeds, None, max_episode_steps, greedy=False, generator=gen)
            loss = reinforce_loss(roll, max_episode_steps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done = k + 1
            if done % 10 == 0 or done == iterations:
                returns = evaluate(policy, PRETRAIN_CHECK_SEEDS, None, max_episode_steps)
                check = float(np.mean(returns))
                if check >= target:
                    break
    finally:
        torch.set_num_threads(threads)
    for p in policy.parameters():
        p.requires_grad_(False)
    info = {
        "seed": seed,
        "iterations": iterations,
        "iterations_run": done,
        "episodes": episodes,
        "lr": lr,
        "target": target,
        "max_episode_steps": max_episode_steps,
        "check_mean_return": check,
        "check_seeds": [PRETRAIN_CHECK_SEEDS[0], PRETRAIN_CHECK_SEEDS[-1]],
    }
    return policy.eval(), info
