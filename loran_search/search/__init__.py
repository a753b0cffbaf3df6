"""The Optuna search: space from the registry, its checks, study create/resume, objective, workers.

Its modules are ordered (docs/architecture.md, "Order inside packages": each imports only
earlier ones): the shared types (:mod:`~loran_search.search.types`) and the repeat keys
(:mod:`~loran_search.search.keys`) first, then the form grammar, the search space
(:mod:`~loran_search.search.space`, the one owner of search-space meaning), recovery, one trial
(:mod:`~loran_search.search.objective`), the worker loop (:mod:`~loran_search.search.workers`),
and on top create/resume (:mod:`~loran_search.search.study`) and the study-file loader
(:func:`~loran_search.search.validate.load_config`). The commands (``run``, ``worker``,
``validate``, ``dashboard``) are in :mod:`loran_search.cli`.
"""
