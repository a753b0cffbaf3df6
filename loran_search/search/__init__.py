"""The Optuna search: space from the registry, study create/resume, objective, workers.

Modules: :mod:`~loran_search.search.space` (search space), :mod:`~loran_search.search.storage`
(storage URLs), :mod:`~loran_search.search.study` (create/resume, the worker loop, recovery),
:mod:`~loran_search.search.objective` (one trial: every seed, the trial record),
:mod:`~loran_search.search.cli` (``run``, ``worker``, ``validate``, ``dashboard``).
"""
