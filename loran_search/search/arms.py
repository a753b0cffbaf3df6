"""The study-file check of ``search.methods`` and ``search.match`` (the peer arms, issue 13).

Every impossible combination is refused by ``validate`` (and so by ``run``/``train``, which load
through the same check), with the reason and the nearest alternative, never at trial 37:

* an unknown method (with a did-you-mean), a repeated one;
* ``study.baseline`` on without ``loran`` among the methods: the QLoRA baseline *is* the LoRAN
  arm with ``f = identity``; the sampler keeps baseline-only values away from candidates only
  for ``activation``, so ``loran`` must be an arm (narrow ``search.activations`` to choose which
  LoRAN activations compete);
* a method on a base it cannot run on (PEANuT and DeLoRA on a bitsandbytes-quantized base; a
  target layer type a method cannot adapt): :func:`loran_search.methods.method_problems`;
* ``<method>.<setting>`` keys of ``search.params``: the method must be in ``search.methods``
  and have that setting; the value must lie in its range or choices.
"""

from __future__ import annotations

from typing import Any

from loran_search.config import Context, did_you_mean
from loran_search.search.space import expand_param_keys, parse_setting_dim
from loran_search.search.types import SpaceError


def method_key(key: Any) -> str | None:
    """The method a ``search.params`` key addresses (``dora.*`` → ``dora``), else ``None``."""
    from loran_search.methods import PEER_METHODS

    if not isinstance(key, str):
        return None
    head = key.partition(".")[0]
    return head if head in PEER_METHODS else None


def check_methods(
    values: dict[str, Any], sections: dict[str, dict[str, Any]], ctx: Context
) -> None:
    """Check ``search.methods``, ``search.match`` and the methods' ``search.params`` keys.

    Args:
        values: The checked ``search:`` values (``methods``, ``params``).
        sections: The sections checked before (``model``, ``study``, ``adapter``).
        ctx: Collects every error with its location; ``ctx.shared["model_description"]`` (the
            model's layers, when they could be read) gives the target layer types.
    """
    from loran_search.methods import LORAN, METHODS, get_method, method_problems

    methods = values.get("methods", [LORAN])
    if not isinstance(methods, list):
        return  # the schema check reported it
    known: list[str] = []
    for i, name in enumerate(methods):
        path = ("search", "methods", i)
        if name not in METHODS:
            ctx.err(
                path,
                f"Unknown method {name!r}.{did_you_mean(name, list(METHODS))} The arms are: "
                f"{', '.join(METHODS)} (loran: the activations of search.activations; the others "
                "are built with peft's own tuners).",
            )
        elif name in known:
            ctx.err(path, f"Method {name!r} is listed twice; list each arm once.")
        else:
            known.append(name)
    if not methods:
        ctx.err(("search", "methods"), "`methods` is empty; give at least [loran].")
    study = sections.get("study", {})
    if known and LORAN not in known and study.get("baseline", True):
        ctx.err(
            ("search", "methods"),
            "The methods do not include loran, but study.baseline is on: the QLoRA baseline is "
            "the LoRAN arm with f = identity. Add loran (e.g. [loran, "
            f"{', '.join(known)}]) and narrow search.activations to the LoRAN activations you "
            "want as candidates, or set study.baseline: false.",
        )
    quantization = sections.get("model", {}).get("quantization", "nf4")
    types = _target_types(sections, ctx)
    for i, name in enumerate(methods):
        if name not in known or name == LORAN:
            continue
        for message in method_problems(name, quantization=quantization, target_types=types):
            ctx.err(("search", "methods", i), message)

    params = values.get("params") or {}
    if not isinstance(params, dict):
        return
    peers = [m for m in known if m != LORAN]
    declared = {m: list(get_method(m).settings) for m in peers}
    covered = expand_param_keys(params, declared)
    for key in params:
        method = method_key(key)
        if method is None:
            continue
        path = ("search", "params", key)
        if method not in known:
            ctx.err(
                path,
                f"'{key}' sets a setting of method '{method}', which is not in search.methods "
                f"({', '.join(known) or 'none'}); add '{method}' there or remove this entry.",
            )
            continue
        settings = get_method(method).settings
        if any(c in key for c in "*?["):
            if not any(k == key for k, _ in covered.values()):
                ctx.err(path, f"'{key}' matches no setting of {method}.")
            continue
        setting = key.partition(".")[2]
        if setting not in settings:
            valid = ", ".join(settings) or "none (it has no settings to search)"
            ctx.err(
                path,
                f"Method '{method}' has no setting '{setting}'."
                f"{did_you_mean(setting, list(settings))} Its settings: {valid}.",
            )
    sampler = study.get("sampler", {})
    grid = isinstance(sampler, dict) and sampler.get("name") == "grid"
    for full, (key, raw) in covered.items():
        method, _, setting = full.partition(".")
        try:
            dim = parse_setting_dim(full, raw, get_method(method).settings[setting])
        except SpaceError as err:
            ctx.err(("search", "params", key), str(err))
            continue
        if grid and not dim.finite:
            from loran_search.search.types import grid_needs_finite_message

            ctx.err(("search", "params", key), grid_needs_finite_message(full))


def _target_types(sections: dict[str, dict[str, Any]], ctx: Context) -> dict[str, set[str]]:
    """``{target: {module types it matches}}`` from the model's layers, when they are known."""
    desc = ctx.shared.get("model_description")
    targets = sections.get("adapter", {}).get("target_modules") or []
    if desc is None or not isinstance(targets, list):
        return {}
    out: dict[str, set[str]] = {}
    for t in targets:
        if not isinstance(t, str):
            continue
        hits = {"Linear" for n in desc.linear if n == t or n.endswith("." + t)}
        hits |= {cls for n, cls in desc.others.items() if n == t or n.endswith("." + t)}
        if hits:
            out[t] = hits
    return out
