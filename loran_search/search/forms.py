r"""The form space: a form-search trial's parameters, the grid of forms, registering a form.

The grammar ``search.forms`` (its trees, canonical forms and names) is
:mod:`loran_search.search.grammar`; this module is its Optuna side.

**Trial parameters** (fixed distributions per name, define-by-run conditional):

* ``activation`` = ``"form"`` (:data:`FORM_CHOICE`) for a form trial (beside the names of
  ``search.activations``, when the study has both);
* ``form.G`` — the root node: a leaf (its text, e.g. ``"sin(frequency*x)"``) or an operator
  (``"+"``); when it is an operator its children are ``form.G.l`` and ``form.G.r``, and so on
  (``form.G.l.r`` …). A node at the last level offers the leaves only;
* ``form.<param>`` — each parameter of ``search.forms.params`` that the chosen form uses (a
  fixed value, a list of choices or a range, as in ``search.params``).

The grid sampler enumerates every distinct canonical form (one representative tree each; trees
whose form is undefined, e.g. a division by a difference that is 0, are left out) times the grid
of *its own* parameters, and queues them like the other grid points.

This module imports sympy and optuna lazily (importing it is cheap); it knows nothing of the
search space's other dimensions, which :mod:`loran_search.search.space` owns.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from loran_search.record import FORM_CHOICE, FORM_FAMILY, FORM_PREFIX
from loran_search.search.grammar import (
    PLACEHOLDER,
    ROOT,
    Form,
    Tree,
    canonical_form,
    node_choices,
    parse_require,
    tree_params,
    tree_text,
    trees,
)
from loran_search.search.keys import form_key

if TYPE_CHECKING:
    from optuna.trial import Trial

    from loran_search.search.types import Dim

#: Seconds between progress lines of a long form-grid enumeration (`FormSpace.distinct_forms`).
PROGRESS_EVERY = 5.0


def _stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


class FormSpace:
    """The form dimension of a study's search space (built by ``search.space.build_space``).

    Args:
        raw: ``search.forms`` as validated (:func:`check_grammar`).
        dims: ``{param: Dim}`` of ``search.forms.params`` (trial names ``form.<param>``).
    """

    def __init__(self, raw: Mapping[str, Any], dims: Mapping[str, Dim]) -> None:
        self.template = str(raw["template"])
        self.leaves: tuple[str, ...] = tuple(str(v) for v in raw["leaves"])
        self.operators: tuple[str, ...] = tuple(raw.get("operators", ["+", "*"]))
        self.depth = int(raw.get("depth", 2))
        self.dims: dict[str, Dim] = dict(dims)
        self.require, _ = parse_require(raw.get("require"))
        self._forms: dict[str, Form] = {}  # name -> form (registered in this process)
        self._by_tree: dict[str, Form] = {}  # tree text -> form
        self._parsed: tuple[Any, list[Any]] | None = None
        self._grid: list[tuple[Form, Tree]] | None = None

    # -- building forms ---------------------------------------------------------------------

    def _sympy(self) -> tuple[Any, list[Any]]:
        if self._parsed is None:
            from loran_search.activations.formula import parse_formula

            names = list(self.dims)
            template = parse_formula(self.template, [*names, PLACEHOLDER])
            leaves = [parse_formula(leaf, names) for leaf in self.leaves]
            self._parsed = (template, leaves)
        return self._parsed

    def _expr_of(self, tree: Tree) -> Any:
        import operator

        import sympy as sp

        template, leaves = self._sympy()
        fns = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}

        def build(t: Tree) -> Any:
            if isinstance(t, int):
                return leaves[t]
            op, a, b = t
            return fns[op](build(a), build(b))

        g = sp.Symbol(PLACEHOLDER, real=True)
        return template.subs(g, build(tree))

    def form_of_tree(self, tree: Tree) -> Form:
        """The canonical :class:`Form` of ``tree`` (cached; not registered)."""
        text = tree_text(tree, self.leaves)
        cached = self._by_tree.get(text)
        if cached is not None:
            return cached
        form = canonical_form(self._expr_of(tree), list(self.dims), text, self.template)
        self._by_tree[text] = form
        return form

    def register(self, form: Form) -> None:
        """Register ``form`` for the study (idempotent; its params with the grammar's ranges)."""
        if not form.defined:
            self._forms[form.name] = form
            return
        from loran_search.activations import ActivationError, find_spec
        from loran_search.activations.formula import register_formula

        existing = find_spec(form.name)
        if existing is not None and (existing.expr != form.expr or existing.family != FORM_FAMILY):
            raise ActivationError(
                f"The name {form.name} of the form {form.expr!r} is registered for "
                f"{existing.expr!r} (module {existing.module}); unregister it."
            )
        declared = {p: self.declaration(p) for p in form.params}
        if existing is None or self._forms.get(form.name) is None:
            # the name is the formula's; the ranges are this study's (another study in this
            # process may have registered the same form with other ranges)
            register_formula(
                form.name, form.expr, declared, family=FORM_FAMILY, force=existing is not None
            )
        self._forms[form.name] = form

    def declaration(self, param: str) -> dict[str, Any]:
        """A parameter's registry declaration ``{default, low, high, log}`` from its Dim.

        Default: the fixed value, the first choice, or the middle of a range (``√(low·high)``
        on a log range, ``(low + high)/2`` on a linear one).
        """
        d = self.dims[param]
        if d.kind == "fixed":
            v = float(d.value)  # type: ignore[arg-type]
            return {"default": v, "low": v, "high": v}
        if d.kind == "choices":
            vals = [float(v) for v in d.choices]
            return {"default": vals[0], "low": min(vals), "high": max(vals)}
        assert d.low is not None and d.high is not None
        mid = math.sqrt(d.low * d.high) if d.log else (d.low + d.high) / 2
        return {"default": mid, "low": d.low, "high": d.high, "log": d.log}

    def owns(self, name: str) -> bool:
        """Whether ``name`` is a form this space registered (in this process)."""
        return name in self._forms

    def form(self, name: str) -> Form:
        """The registered form ``name``."""
        return self._forms[name]

    # -- sampling ---------------------------------------------------------------------------

    def suggest(self, trial: Trial) -> tuple[str, dict[str, Any]]:
        """Sample a tree node by node (``form.G`` …), then the parameters its form uses.

        Returns:
            ``(form name, {param: value})``; the form is registered.
        """

        def node(path: str, levels: int) -> Tree:
            choice = trial.suggest_categorical(
                path, node_choices(self.leaves, self.operators, levels)
            )
            if choice in self.operators and levels > 1:
                return (str(choice), node(f"{path}.l", levels - 1), node(f"{path}.r", levels - 1))
            return self.leaves.index(str(choice))

        form = self.form_of_tree(node(ROOT, self.depth))
        self.register(form)
        values = {p: self.dims[p].suggest(trial) for p in form.params}
        return form.name, values

    def tree_of(
        self, params: Mapping[str, Any], path: str = ROOT, levels: int | None = None
    ) -> Tree | None:
        """The tree that trial ``params`` stand for (``None`` when a node is missing)."""
        levels = self.depth if levels is None else levels
        choice = params.get(path)
        if choice in self.operators and levels > 1:
            a = self.tree_of(params, f"{path}.l", levels - 1)
            b = self.tree_of(params, f"{path}.r", levels - 1)
            return None if a is None or b is None else (str(choice), a, b)
        if choice in self.leaves:
            return self.leaves.index(str(choice))
        return None

    def config_of(self, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """``(form name, {param: value})`` of recorded or queued ``params`` (registers it)."""
        tree = self.tree_of(params)
        if tree is None:
            return None
        form = self.form_of_tree(tree)
        self.register(form)
        values: dict[str, Any] = {}
        for p in form.params:
            d = self.dims[p]
            if not d.searched:
                values[p] = d.value
            elif d.name in params:
                values[p] = params[d.name]
            else:
                return None
        return form.name, values

    def first(self) -> tuple[str, dict[str, Any]]:
        """The first form (the first leaf in the template) at its parameters' defaults."""
        form = self.form_of_tree(0)
        self.register(form)
        return form.name, {p: self.declaration(p)["default"] for p in form.params}

    # -- the grid ---------------------------------------------------------------------------

    def distinct_forms(self, say: Callable[[str], None] | None = None) -> list[tuple[Form, Tree]]:
        """Every distinct defined canonical form with its first tree, in enumeration order.

        Each tree is canonicalised with sympy (a few ms each: a grammar near
        :data:`MAX_GRID_TREES` takes minutes), so an enumeration that lasts longer than
        :data:`PROGRESS_EVERY` seconds says how far it is every :data:`PROGRESS_EVERY` seconds
        (``say``; default: a line on stderr) instead of printing nothing.
        """
        if self._grid is None:
            say = say or _stderr
            all_trees = trees(len(self.leaves), self.operators, self.depth)
            out: dict[str, tuple[Form, Tree]] = {}
            start = last = time.monotonic()
            for i, tree in enumerate(all_trees, 1):
                form = self.form_of_tree(tree)
                if form.defined and form.name not in out:
                    out[form.name] = (form, tree)
                now = time.monotonic()
                if now - last >= PROGRESS_EVERY and i < len(all_trees):
                    last = now
                    left = (len(all_trees) - i) * (now - start) / i
                    say(
                        f"Enumerating the form grid: {i:,} of {len(all_trees):,} trees "
                        f"canonicalised, {len(out):,} distinct forms so far (about {left:.0f} s "
                        "left; a smaller depth or fewer leaves/operators is faster)."
                    )
            if last > start:
                say(
                    f"Form grid: {len(out):,} distinct forms from {len(all_trees):,} trees in "
                    f"{time.monotonic() - start:.0f} s."
                )
            self._grid = list(out.values())
        return self._grid

    def grid_points(self) -> list[dict[str, Any]]:
        """Trial params of every distinct form × the grid of its own searched parameters.

        Raises:
            SpaceError-like ``ValueError``: a searched parameter without ``step``/``num``
            (``Dim.grid_values``).
        """
        points: list[dict[str, Any]] = []
        for form, tree in self.distinct_forms():
            nodes = tree_params(tree, self.leaves)
            searched = [self.dims[p] for p in form.params if self.dims[p].searched]
            for combo in itertools.product(*(d.grid_values() for d in searched)):
                point = {d.name: v for d, v in zip(searched, combo, strict=True)}
                points.append({"activation": FORM_CHOICE, **nodes, **point})
        return points

    def describe(self) -> dict[str, Any]:
        """A JSON form of the grammar (part of the study fingerprint)."""
        return {
            "template": self.template,
            "leaves": list(self.leaves),
            "operators": list(self.operators),
            "depth": self.depth,
            "params": {f"{FORM_PREFIX}.{p}": d.to_dict() for p, d in self.dims.items()},
            "require": [r if v is None else {r: v} for r, v in self.require],
        }

    # -- screening and the trial record ---------------------------------------------------

    def key(
        self, name: str, values: Mapping[str, Any], rank: int, training: Mapping[str, Any]
    ) -> str:
        """The dedup key (:func:`loran_search.search.keys.form_key`) of a form proposal."""
        return form_key(self.form(name).expr, values, rank, training)
