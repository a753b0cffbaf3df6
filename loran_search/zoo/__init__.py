"""Small in-process networks, their data and environments, and how they are pretrained.

Beyond the LLaMA-style decoders, LoRAN is studied on networks small enough to pretrain here,
seeded, in seconds to a minute (their weights are cached as embedded assets by
:mod:`loran_search.assets`: ``digits-cnn``, ``digits-vit``, ``cartpole-mlp``):

* :mod:`.digits` — scikit-learn's bundled digits (1,797 8×8 grey images, read from the
  package's ``digits.csv.gz`` without importing scikit-learn), a small CNN and a small ViT,
  pretrained on the digits 0–4;
* :mod:`.cartpole` — Gymnasium's ``CartPole-v1`` with settable dynamics, an MLP policy, seeded
  rollouts and the REINFORCE-with-baseline estimator used to pretrain it at the default
  dynamics and, as a task's loss, to adapt it to changed ones.

This room knows nothing of adapters, tasks or studies; it needs torch, numpy and gymnasium.
"""
