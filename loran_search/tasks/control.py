"""Control: a CartPole policy adapted to changed dynamics by policy gradient.

The environment is Gymnasium's ``CartPole-v1`` with the constants of ``task.env`` changed
(``gravity``, ``masscart``, ``masspole``, ``length``, ``force_mag``; ``max_episode_steps``
caps an episode, default 500; :mod:`loran_search.zoo.cartpole`). ``task.name`` is ``cartpole``.

Episodes are examples, identified by their environment seed. The splits are fixed ranges of
seeds, offset by ``task.split_seed``: ``train`` seeds ``10⁶·(1 + 10·k) + i``, ``val``
``10⁶·(2 + 10·k) + i`` and ``test`` ``10⁶·(3 + 10·k) + i`` (``k = split_seed``,
``i = 0 … size − 1``, ``size`` = ``task.train_size`` for train, ``task.eval_size`` for the
evaluated split; ``null`` means 512 and 64), so the evaluation episodes never start where a
training episode did and every run sees the same ones. Example ids are ``episode/<seed>``.

Training: one micro-batch is ``training.batch_size`` training seeds (≥ 2; an epoch's one-seed
last batch gets a second seed); each is played once
with actions sampled from the policy (torch's generator, seeded by the run's seed) and
:meth:`ControlTask.loss` is REINFORCE with a leave-one-out baseline
(:func:`loran_search.zoo.cartpole.reinforce_loss`): its value is the batch's shortfall
``1 − mean_i R_i / T`` (positive; a run's loss and its divergence and spike telemetry read as for
any loss), its gradient the score-function estimate of the expected shortfall's gradient.

Evaluation plays every evaluation episode greedily (``argmax`` action), so a policy's return on
a seed is deterministic: metric ``mean_return = mean_i R_i``; per-example outcomes
``{"id", "return"}`` (paired across runs by episode seed, a continuous outcome as ROUGE is).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loran_search.config import TaskSection
from loran_search.tasks.base import Truncation
from loran_search.tasks.data import TaskError
from loran_search.tasks.metrics import TASK_METRICS, mean

ENVIRONMENT = "cartpole"
SPLIT_OFFSETS = {"train": 1, "val": 2, "test": 3}
DEFAULT_SIZES = {"train": 512, "eval": 64}
SEED_STRIDE = 1_000_000


def env_problems(env: Mapping[str, Any] | None) -> list[str]:
    """What is wrong with ``task.env`` (empty when nothing is)."""
    from loran_search.zoo.cartpole import DYNAMICS

    problems = []
    for key, value in (env or {}).items():
        known = (*DYNAMICS, "max_episode_steps")
        if key not in known:
            problems.append(f"task.env.{key} is not a CartPole setting; known: {', '.join(known)}.")
        elif isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            problems.append(f"task.env.{key} must be a number > 0 (got {value!r}).")
        elif key == "max_episode_steps" and int(value) != value:
            problems.append(f"task.env.max_episode_steps must be a whole number (got {value!r}).")
    return problems


def split_seeds(split: str, size: int, split_seed: int) -> list[int]:
    """The episode seeds of ``split`` (module docstring)."""
    base = SEED_STRIDE * (SPLIT_OFFSETS[split] + 10 * split_seed)
    return [base + i for i in range(size)]


class ControlTask:
    """The CartPole adaptation task (see the module docstring)."""

    type = "control"
    metric_names = TASK_METRICS["control"]

    def __init__(self, cfg: TaskSection) -> None:
        from loran_search.zoo.cartpole import MAX_EPISODE_STEPS

        if cfg.name != ENVIRONMENT:
            raise TaskError(
                f"task.name {cfg.name!r}: control tasks run the environment {ENVIRONMENT!r} "
                f"only; set task.name: {ENVIRONMENT}."
            )
        problems = env_problems(cfg.env)
        if problems:
            raise TaskError(" ".join(problems))
        for key, split in (("train_split", cfg.train_split), ("eval_split", cfg.eval_split)):
            if split not in SPLIT_OFFSETS:
                raise TaskError(
                    f"task.{key} {split!r} is not a split of {ENVIRONMENT!r}; its splits: "
                    f"{', '.join(SPLIT_OFFSETS)}."
                )
        self.cfg = cfg
        env = dict(cfg.env or {})
        self.max_episode_steps = int(env.pop("max_episode_steps", MAX_EPISODE_STEPS))
        self.dynamics = {k: float(v) for k, v in env.items()}
        n_train = cfg.train_size if cfg.train_size is not None else DEFAULT_SIZES["train"]
        n_eval = cfg.eval_size if cfg.eval_size is not None else DEFAULT_SIZES["eval"]
        if n_train < 2 or n_eval < 1:
            raise TaskError(
                f"task.train_size must be ≥ 2 and task.eval_size ≥ 1 episodes (got {n_train}, "
                f"{n_eval})."
            )
        self.train_examples = split_seeds(cfg.train_split, n_train, cfg.split_seed)
        self.eval_seeds = split_seeds(cfg.eval_split, n_eval, cfg.split_seed)
        self.eval_ids = [f"episode/{s}" for s in self.eval_seeds]
        self.eval_split = cfg.eval_split
        changed = ", ".join(f"{k} = {v:g}" for k, v in self.dynamics.items()) or "none"
        self.notes = [
            f"CartPole-v1, changed constants: {changed}; episodes capped at "
            f"{self.max_episode_steps} steps; {n_train} training and {n_eval} {cfg.eval_split} "
            f"episode seeds (split_seed {cfg.split_seed})"
        ]
        self.truncation = Truncation(n_train=n_train, n_eval=n_eval)

    def loss(self, model: Any, batch: list[int]) -> Any:
        """REINFORCE with a leave-one-out baseline on one batch of training seeds."""
        from loran_search.zoo.cartpole import reinforce_loss, rollout

        if len(batch) < 2:  # an epoch's short last batch: the baseline needs a second episode
            batch = [*batch, next(s for s in self.train_examples if s != batch[0])]
        roll = rollout(model, batch, self.dynamics, self.max_episode_steps, greedy=False)
        return reinforce_loss(roll, self.max_episode_steps)

    def evaluate_examples(
        self, model: Any, batch_size: int = 8
    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Greedy returns on every evaluation episode (all at once; ``batch_size`` unused)."""
        from loran_search.zoo.cartpole import evaluate

        returns = evaluate(model, self.eval_seeds, self.dynamics, self.max_episode_steps)
        examples = [{"id": i, "return": r} for i, r in zip(self.eval_ids, returns, strict=True)]
        return {"mean_return": mean(returns)}, examples

    def evaluate(self, model: Any, batch_size: int = 8) -> dict[str, float]:
        """The metrics of :meth:`evaluate_examples`."""
        return self.evaluate_examples(model, batch_size)[0]
