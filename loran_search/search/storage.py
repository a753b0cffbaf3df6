"""Moved to :mod:`loran_search.storage` (import from there); this re-export is removed later."""

from loran_search.storage import *  # noqa: F403
from loran_search.storage import __all__, _with_driver  # noqa: F401
