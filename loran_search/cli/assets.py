"""``loran-search assets list | fetch``: the embedded offline models and datasets."""

from __future__ import annotations

import argparse
import json

from loran_search.cli._args import add_command, add_format
from loran_search.errors import RuntimeFailure, UsageError

_HERE = "loran_search.cli.assets"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``assets list | fetch``."""
    assets = sub.add_parser("assets", help="embedded offline models and datasets")
    assets_sub = assets.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = add_command(assets_sub, "list", f"{_HERE}:cmd_list", "list embedded assets")
    add_format(p, ("table", "json"), "table")
    p = add_command(assets_sub, "fetch", f"{_HERE}:cmd_fetch", "build assets into the cache")
    p.add_argument("names", nargs="*", metavar="NAME", help="assets (default: all)")
    p.add_argument("--force", action="store_true", help="rebuild even when cached")


def _status(name: str) -> str:
    from loran_search.assets import check

    problems = check(name)
    if problems == ["not built"]:
        return "not built"
    return "cached" if not problems else "stale: " + "; ".join(problems)


def cmd_list(args: argparse.Namespace) -> int:
    """``loran-search assets list [--format table|json]``."""
    from loran_search.assets import ASSETS, asset_dir, cache_root

    rows = [
        {
            "name": s.name,
            "kind": s.kind,
            "task_type": s.task_type,
            "package": s.pin,
            "status": _status(s.name),
            "path": str(asset_dir(s.name)),
            "description": s.description,
        }
        for s in ASSETS.values()
    ]
    if getattr(args, "format", "table") == "json":
        print(json.dumps(rows, indent=2))
        return 0
    keys = ["name", "kind", "package", "status", "description"]
    w = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    print("  ".join(k.upper().ljust(w[k]) for k in keys))
    for r in rows:
        print("  ".join(str(r[k]).ljust(w[k]) for k in keys))
    print(f"\ncache: {cache_root()} (set LORAN_SEARCH_CACHE to move it)")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """``loran-search assets fetch [NAME…] [--force]``: build (or verify) assets in the cache."""
    from loran_search.assets import ASSETS, AssetError, ensure, unknown_asset_message

    names = list(args.names) or list(ASSETS)
    unknown = [n for n in names if n not in ASSETS]
    if unknown:
        raise UsageError("\n".join(unknown_asset_message(n) for n in unknown))
    for n in names:
        try:
            path = ensure(n, force=bool(args.force), verify=True)
        except AssetError as err:
            raise RuntimeFailure(str(err)) from err
        print(f"{n}: {path}")
    return 0
