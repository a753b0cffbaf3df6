"""The Optuna search: space from the registry, its checks, study create/resume, objective, workers.

Modules: :mod:`~loran_search.search.space` (the one owner of search-space meaning),
:mod:`~loran_search.search.validate` (the search's section of the config check, and
:func:`~loran_search.search.validate.load_config`, the study-file loader),
:mod:`~loran_search.search.study` (create/resume, the worker loop, recovery),
:mod:`~loran_search.search.objective` (one trial: every seed, the trial record).
The commands (``run``, ``worker``, ``validate``, ``dashboard``) are in :mod:`loran_search.cli`.
"""
