r"""Form search: a grammar of perturbations, canonicalised with sympy and screened before training.

``search.forms`` searches the *form* of the activation, not only its parameters::

    search:
      forms:
        template: "x + amplitude*G"        # G: the searched sub-expression in x
        leaves: ["x", "sin(frequency*x)", "tanh(x/width)", "exp(-(x/width)**2)"]
        operators: ["+", "*"]              # binary operators combining two sub-expressions
        depth: 2                           # G = leaf | op(G, G), at most this deep
        params:                            # the parameters the leaves and the template use
          amplitude: {low: 1.0e-4, high: 10.0, log: true}
          frequency: {low: 10.0, high: 1.0e5, log: true}
          width: {low: 1.0e-4, high: 1.0e-1, log: true}
        require: [starts_at_zero, finite]  # audit rules a form must pass before it is trained

**The grammar.** ``G`` is a tree: a leaf, or ``op(G₁, G₂)`` with ``op`` one of ``operators``
(``+ - * /``). ``depth`` counts the levels of the tree, leaves included: ``T(1)`` = the leaves,
``T(d) = T(1) ∪ {op(a, b) : op ∈ operators, a, b ∈ T(d−1)}``, for ``1 ≤ d ≤`` :data:`MAX_DEPTH`.
With ``L`` leaves and operators ``O``, the number of ordered trees is

.. math::

    N(1) = L, \qquad N(d) = L + \sum_{op ∈ O} N(d-1)^2,

and with commutative ``+`` and ``*`` taken once per unordered pair (``a + b`` = ``b + a``),
``N(d−1)²`` becomes ``N(d−1)·(N(d−1) + 1)/2`` for those operators (:func:`count_trees`). The form
is ``f(x) = template[G := tree]``. The template and every leaf are read by the safe formula parser
(:func:`activations.formula.parse_formula`: never ``eval``); ``G`` and the declared parameters
are the only names besides ``x`` and ``pi``.

**Canonical form and name.** ``f`` is built with sympy, which sorts the arguments of ``+`` and
``*`` (commutativity), merges ``x·x`` into ``x²`` and folds constants; it is then expanded
(``sp.expand`` without splitting ``exp(a + b)`` or logarithms), so ``(s + t)·u`` and
``s·u + t·u`` are one form. The canonical formula is printed back in the parser's language and
parsed again (a form is only ever registered from text the safe parser accepts). Its stable name
is ``form_<first 10 hex digits of sha256(canonical formula)>``: equal forms spelt differently get
one name, in every process. The form is registered for the study (family ``form``, its
parameters with the ranges of ``search.forms.params``) the first time it is met, so the training
function receives it as any other activation: ``activation`` = that name,
``get_spec(name).expr`` = the canonical formula.

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

**Screening** (before any training, at zero cost; :func:`screen`). A candidate form is refused
when a rule of ``require`` fails on the visited range of ``P = B·A`` — ``[−m, m]`` with ``m``
the largest ``|P|`` entry recorded (``mechanism.p_quantiles``) by the COMPLETE search trials of
the same rank, ``[−1, 1]`` before any has run (:func:`loran_search.record.visited_range`, the
rule the report shows the forms on too):

* ``starts_at_zero``: ``f(0) = 0`` (else ``ΔW = s·f(B·A)`` does not start at zero when
  ``B = 0``);
* ``finite``: ``f`` is defined, and ``f`` and ``f'`` are finite on the range: ``f`` on 4001
  points and 0, then no singularity inside the range — found symbolically where sympy can
  (:func:`activations.audit.singularities`: the real roots of a polynomial denominator, the
  poles of ``tan``, where ``log``/``sqrt`` leave the reals; a sign change of any other
  denominator on a dense grid) — then ``f'`` finite on the audit's oscillation-aware grid and
  its Lipschitz estimate at most :data:`FINITE_SLOPE` (the fallback for a pole no search
  placed: a point grid alone steps over poles);
* ``{max_lipschitz: L}``: the audit's Lipschitz estimate ``sup |f'|`` on the range is ≤ ``L``.

Always refused: a form that reduces to ``f(x) = x`` (it is the baseline, LoRA), and a form that
is linear at the sampled values, ``f(x) = c·x (+ d)`` (``f'' ≡ 0``, e.g. ``x + a·x``): that is
LoRA with its step rescaled by ``c``, inert as a non-linearity (``failure`` = ``screened:
linear: …``). A refused form
never reaches the training function: its trial is recorded **PRUNED** (samplers rank pruned
trials below complete ones, so TPE learns to avoid it; it drops FAIL trials and kept proposing
them) with ``user_attrs["failure"] = "screened: <rule>: <value>"`` and ``failure_kind =
"screened"`` (counted toward ``n_trials``, never retried), and the study goes on.

**No form trained twice** (:func:`find_twin`, :func:`undeclared`). Every candidate form trial
records ``user_attrs["form"] = {name, expr, tree, key, interval}`` before anything else, ``key``
= rank, canonical formula, parameter values and training overrides. A proposal whose key a
COMPLETE, PRUNED or configuration-FAIL trial already holds is answered from that trial: COMPLETE
with the same value(s), or PRUNED/FAIL as it ended, with ``user_attrs["duplicate_of"]`` = its
number (the analysis leaves it out of the tables and counts it as deduplicated; it is counted
toward ``n_trials`` as a proposal). Across workers: a RUNNING trial with the key that *started
first* (``datetime_start``, then number) is waited for and then answers; and while a trial that
started first is RUNNING without having written its key yet (it may hold the same one), the
proposal waits for it to write it (at most :data:`DECLARE_TIMEOUT` seconds, less when that
trial's worker on this host is gone). So of two workers that take the same form at the same
moment exactly one trains it; the other waits and takes its value.

This module imports sympy and optuna lazily (importing it is cheap); it knows nothing of the
search space's other dimensions, which :mod:`loran_search.search.space` owns.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loran_search import record as R
from loran_search.record import FORM_CHOICE, FORM_FAMILY, FORM_PREFIX

if TYPE_CHECKING:
    import sympy as sp
    from optuna.trial import FrozenTrial, Trial

    from loran_search.search.space import Dim

#: The root node's trial parameter; children append ``.l`` / ``.r``.
ROOT = "form.G"
#: The placeholder of the template.
PLACEHOLDER = "G"
#: Deepest tree accepted (depth 4 with 4 leaves and 2 operators has millions of trees).
MAX_DEPTH = 3
#: Most ordered trees the grid sampler enumerates (each one is canonicalised with sympy).
MAX_GRID_TREES = 20_000
#: The binary operators a grammar may combine sub-expressions with.
OPERATORS = ("+", "-", "*", "/")
#: The operators whose operands commute (one tree per unordered pair in the enumeration).
COMMUTATIVE = frozenset({"+", "*"})
#: The screening rules (``max_lipschitz`` takes a number: ``{max_lipschitz: 10}``).
RULES = ("starts_at_zero", "finite", "max_lipschitz")
#: ``require`` when the grammar does not say.
DEFAULT_REQUIRE = ("starts_at_zero", "finite")
#: The keys of ``search.forms``.
KEYS = ("template", "leaves", "operators", "depth", "params", "require")
#: Points of the value grid of the ``finite`` rule (besides 0).
FINITE_GRID = 4001
#: ``sup |f'|`` above which the ``finite`` rule reads a form as singular when the symbolic
#: search found no singularity: a float32 entry of ``B·A`` near 1 moves by one ulp
#: (``2⁻²³ ≈ 1.2e-7``), and a slope of 1e8 turns that rounding step into a jump of ~12 in the
#: update, so such a form is not finite in the precision it is trained in.
FINITE_SLOPE = 1e8
#: Seconds between progress lines of a long form-grid enumeration (`FormSpace.distinct_forms`).
PROGRESS_EVERY = 5.0
#: Seconds between looks at a running twin.
POLL = 0.5
#: Seconds a proposal waits for earlier running proposals to write their form's key.
DECLARE_TIMEOUT = 30.0

#: A tree: a leaf index, or ``(operator, left, right)``.
Tree = int | tuple[str, "Tree", "Tree"]


def _stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


class FormError(ValueError):
    """A form cannot be built or written in the formula language (the message says why)."""


# ------------------------------------------------------------------------------ trees


def trees(
    n_leaves: int, operators: Sequence[str], depth: int, *, commutative: bool = True
) -> list[Tree]:
    """Every tree of ``T(depth)`` (module doc), leaves first, in a fixed order.

    Args:
        n_leaves: Number of leaves ``L``.
        operators: The binary operators.
        depth: ``d ≥ 1``.
        commutative: Take ``a + b`` and ``b + a`` (and ``*``) once.
    """
    level: list[Tree] = list(range(n_leaves))
    for _ in range(depth - 1):
        nxt: list[Tree] = list(range(n_leaves))
        for op in operators:
            if commutative and op in COMMUTATIVE:
                pairs = itertools.combinations_with_replacement(level, 2)
            else:
                pairs = itertools.product(level, repeat=2)
            nxt.extend((op, a, b) for a, b in pairs)
        level = nxt
    return level


def count_trees(
    n_leaves: int, operators: Sequence[str], depth: int, *, commutative: bool = True
) -> int:
    r"""``N(depth)`` of the module doc without building the trees.

    ``N(1) = L``; ``N(d) = L + Σ_op n_op(N(d−1))`` with ``n_op(n) = n²``, or
    ``n(n + 1)/2`` for a commutative operator when ``commutative``.
    """
    n = n_leaves
    for _ in range(depth - 1):
        n = n_leaves + sum(
            n * (n + 1) // 2 if commutative and op in COMMUTATIVE else n * n for op in operators
        )
    return n


def tree_text(tree: Tree, leaves: Sequence[str]) -> str:
    """The tree as a formula: ``(sin(frequency*x)) + (x)`` style, fully parenthesised."""
    if isinstance(tree, int):
        return leaves[tree]
    op, a, b = tree
    return f"({tree_text(a, leaves)}) {op} ({tree_text(b, leaves)})"


def tree_params(tree: Tree, leaves: Sequence[str], path: str = ROOT) -> dict[str, str]:
    """The trial parameters that stand for ``tree``: ``{form.G: "+", form.G.l: "x", …}``."""
    if isinstance(tree, int):
        return {path: leaves[tree]}
    op, a, b = tree
    return {path: op, **tree_params(a, leaves, f"{path}.l"), **tree_params(b, leaves, f"{path}.r")}


def node_choices(leaves: Sequence[str], operators: Sequence[str], levels_left: int) -> list[str]:
    """The choices of a node with ``levels_left`` levels below and including it."""
    return [*leaves, *operators] if levels_left > 1 else list(leaves)


# ------------------------------------------------------------------------------ canonical form


def _printer() -> Any:
    """A sympy printer whose output is in the safe parser's language (``abs``, ``relu``)."""
    import sympy as sp
    from sympy.printing.str import StrPrinter

    class FormulaPrinter(StrPrinter):
        def _print_Abs(self, expr: sp.Abs) -> str:
            return f"abs({self._print(expr.args[0])})"

        def _print_Max(self, expr: sp.Max) -> str:
            args = list(expr.args)
            if len(args) == 2 and sp.Integer(0) in args:
                other = args[1] if args[0] == 0 else args[0]
                return f"relu({self._print(other)})"
            raise FormError(f"{expr} cannot be written with the formula functions")

        def _print_Exp1(self, expr: Any) -> str:
            return "exp(1)"

        def _print_Function(self, expr: Any) -> str:
            from loran_search.activations.formula import FUNCTIONS

            name = expr.func.__name__
            if name not in FUNCTIONS:
                raise FormError(f"{name}() is not a function of the formula language")
            return super()._print_Function(expr)

        def _print_Sum(self, expr: Any) -> str:
            raise FormError("a sum with a parameter bound cannot be part of a form")

    return FormulaPrinter({"order": None})


def canonical_expr(expr: sp.Expr) -> sp.Expr:
    """Expanded, sympy-ordered form of ``expr`` (module doc; no ``exp``/``log`` splitting)."""
    import sympy as sp

    from loran_search.activations.formula import expand_sums

    return sp.expand(expand_sums(expr), power_exp=False, log=False)


def undefined(expr: sp.Expr) -> bool:
    """Whether sympy found the expression undefined or not real (``zoo``, ``nan``, ``I``)."""
    import sympy as sp

    return bool(expr.has(sp.zoo, sp.nan, sp.oo, sp.S.NegativeInfinity, sp.I))


def form_name(text: str) -> str:
    """``form_<sha256(text)[:10]>``: the stable registry name of a canonical formula."""
    return R.FORM_NAME_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


@dataclass(frozen=True)
class Form:
    """One canonical form.

    Attributes:
        name: ``form_<hash>`` (:func:`form_name`).
        expr: The canonical formula (in the parser's language).
        params: The parameters it uses, sorted.
        tree: The tree's formula (before canonicalisation), e.g. ``(x) * (sin(frequency*x))``.
        defined: ``False`` when sympy found the form undefined (it is then screened).
    """

    name: str
    expr: str
    params: tuple[str, ...]
    tree: str
    defined: bool = True


# ------------------------------------------------------------------------------ the grammar


def parse_require(
    raw: Any,
) -> tuple[list[tuple[str, float | None]], list[tuple[tuple[Any, ...], str]]]:
    """``require`` → ``[(rule, value)]`` and the problems (``(sub-path, message)``)."""
    if raw is None:
        return [(r, None) for r in DEFAULT_REQUIRE], []
    items = raw if isinstance(raw, list) else [raw]
    out: list[tuple[str, float | None]] = []
    problems: list[tuple[tuple[Any, ...], str]] = []
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and len(item) == 1:
            ((rule, value),) = item.items()
        else:
            rule, value = item, None
        if rule not in RULES:
            from loran_search.config import did_you_mean

            problems.append(
                (
                    ("require", i),
                    f"Unknown screening rule {rule!r}.{did_you_mean(str(rule), list(RULES))} "
                    "Rules: starts_at_zero, finite, {max_lipschitz: NUMBER}, e.g. "
                    "require: [starts_at_zero, finite, {max_lipschitz: 10}].",
                )
            )
            continue
        if rule == "max_lipschitz":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                problems.append(
                    (
                        ("require", i),
                        f"`max_lipschitz` needs a positive number, e.g. {{max_lipschitz: 10}}, "
                        f"but got {value!r}.",
                    )
                )
                continue
            out.append((rule, float(value)))
        elif value is not None:
            problems.append(
                (("require", i), f"The rule {rule!r} takes no value; write it as a plain name.")
            )
        else:
            out.append((rule, None))
    return out, problems


def check_grammar(raw: Any) -> list[tuple[tuple[Any, ...], str]]:
    """Every problem of a ``search.forms`` mapping except its ``params`` ranges.

    The template and the leaves are parsed by the safe parser with ``G`` (template only) and the
    keys of ``params`` as the only names besides ``x`` and ``pi``: attribute access, double
    underscores, unknown names or calls and anything but arithmetic are refused with the
    parser's message. Also: the template must use ``G``; operators must be ``+ - * /``; the
    depth an integer from 1 to :data:`MAX_DEPTH`; every declared parameter used somewhere.

    Returns:
        ``(sub-path under search.forms, message)`` pairs; empty when the grammar is valid.
    """
    from loran_search.config import unknown_key_problems

    if not isinstance(raw, Mapping):
        return [
            (
                (),
                f"`forms` must be a mapping {{template, leaves, operators, depth, params, "
                f"require}}, got {raw!r}.",
            )
        ]
    problems = unknown_key_problems(raw, list(KEYS), "in `search.forms:`")
    params = raw.get("params") or {}
    if not isinstance(params, Mapping):
        problems.append(
            (("params",), f"`params` must be a mapping {{name: range}}, got {params!r}.")
        )
        params = {}
    names = [str(p) for p in params]
    for p in names:
        if p == PLACEHOLDER or "." in p or not p.isidentifier():
            problems.append(
                (
                    ("params", p),
                    f"Invalid parameter name {p!r}: use letters, digits and single underscores "
                    f"(not '{PLACEHOLDER}', the template's placeholder).",
                )
            )
    names = [p for p in names if p != PLACEHOLDER and p.isidentifier()]
    from loran_search.activations.formula import FormulaError, parse_formula

    used: set[str] = set()
    template = raw.get("template")
    if not isinstance(template, str) or not template.strip():
        problems.append(
            (("template",), '`template` needs a formula in x and G, e.g. "x + amplitude*G".')
        )
    else:
        try:
            expr = parse_formula(template, [*names, PLACEHOLDER])
        except FormulaError as err:
            problems.append((("template",), f"{err} {_declare_hint(err, template=True)}"))
        else:
            symbols = {s.name for s in expr.free_symbols}
            if PLACEHOLDER not in symbols:
                problems.append(
                    (
                        ("template",),
                        f"The template {template!r} does not use {PLACEHOLDER}, the searched "
                        f'sub-expression; write it in, e.g. "x + amplitude*{PLACEHOLDER}".',
                    )
                )
            used |= symbols
    leaves = raw.get("leaves")
    if not isinstance(leaves, list) or not leaves:
        problems.append(
            (("leaves",), '`leaves` needs a list of formulas in x, e.g. [x, "sin(frequency*x)"].')
        )
        leaves = []
    seen: dict[str, int] = {}
    for i, leaf in enumerate(leaves):
        if not isinstance(leaf, str) or not leaf.strip():
            problems.append((("leaves", i), f"A leaf must be a formula (a string), got {leaf!r}."))
            continue
        if leaf in seen:
            problems.append((("leaves", i), f"The leaf {leaf!r} repeats leaf {seen[leaf]}."))
            continue
        seen[leaf] = i
        if leaf.strip() in OPERATORS:
            problems.append((("leaves", i), f"The leaf {leaf!r} is an operator, not a formula."))
            continue
        try:
            expr = parse_formula(leaf, names)
        except FormulaError as err:
            problems.append((("leaves", i), f"{err} {_declare_hint(err)}"))
            continue
        used |= {s.name for s in expr.free_symbols}
    ops = raw.get("operators", ["+", "*"])
    if not isinstance(ops, list):
        ops = [ops]
    for i, op in enumerate(ops):
        if op not in OPERATORS:
            problems.append(
                (
                    ("operators", i),
                    f"Unknown operator {op!r}; the grammar combines sub-expressions with "
                    f'{" ".join(OPERATORS)} only, e.g. operators: ["+", "*"] (write powers and '
                    'functions into the leaves, e.g. "x**2").',
                )
            )
    if len(set(map(str, ops))) != len(ops):
        problems.append((("operators",), f"`operators` repeats an operator: {ops!r}."))
    depth = raw.get("depth", 2)
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        problems.append(
            (
                ("depth",),
                f"`depth` must be an integer from 1 (a leaf) to {MAX_DEPTH}, but got {depth!r}; "
                f"depth {MAX_DEPTH + 1} would have millions of trees; e.g. depth: 2.",
            )
        )
    for p in names:
        if p not in used:
            problems.append(
                (
                    ("params", p),
                    f"The parameter {p!r} is used by no leaf and not by the template; remove it, "
                    f'or use it in a leaf (e.g. "sin({p}*x)").',
                )
            )
    _, require_problems = parse_require(raw.get("require"))
    problems.extend(require_problems)
    return problems


def _declare_hint(err: Exception, *, template: bool = False) -> str:
    """The fix of a refused leaf or template."""
    if "unknown name" in str(err):
        return "Declare it under search.forms.params (e.g. {low: 1.0e-3, high: 1.0, log: true})."
    if template:
        return (
            "Write the template as an arithmetic formula in x, G and the declared parameters, "
            'e.g. "x + amplitude*G".'
        )
    return (
        "Write each leaf as an arithmetic formula in x and the declared parameters, using "
        'the formula functions (sin, cos, tanh, exp, ...), e.g. "sin(frequency*x)".'
    )


def grid_tree_problem(raw: Mapping[str, Any]) -> str | None:
    """Why the grid sampler cannot enumerate the grammar (too many trees), or ``None``."""
    n = count_trees(
        len(raw.get("leaves") or []),
        list(raw.get("operators", ["+", "*"])),
        int(raw.get("depth", 2)),
    )
    if n <= MAX_GRID_TREES:
        return None
    return (
        f"The grammar has {n} trees (with commutative pairs taken once); the grid sampler "
        f"enumerates at most {MAX_GRID_TREES}. Lower `depth`, use fewer leaves or operators, or "
        "use another sampler (tpe, random, ...), which samples trees without enumerating them."
    )


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
        from loran_search.activations.formula import FormulaError, parse_formula

        text = tree_text(tree, self.leaves)
        cached = self._by_tree.get(text)
        if cached is not None:
            return cached
        expr = self._expr_of(tree)
        if undefined(expr):
            form = Form(
                form_name("undefined|" + text),
                f"{self.template} with G = {text}",
                (),
                text,
                defined=False,
            )
        else:
            names = list(self.dims)
            canon = canonical_expr(expr)
            printed = _printer().doprint(canon)
            try:
                again = canonical_expr(parse_formula(printed, names))
            except FormulaError as err:
                raise FormError(f"The form {printed!r} cannot be read back: {err}") from err
            if again != canon:  # printing rounded a float: the text read back is the form
                printed = _printer().doprint(again)
                canon = again
            used = tuple(sorted(s.name for s in canon.free_symbols if s.name != "x"))
            form = Form(form_name(printed), printed, used, text)
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
        """The dedup key: rank, canonical formula, parameter values, training overrides."""
        vals = {p: float(f"{float(v):.12g}") for p, v in sorted(values.items())}
        return json.dumps(
            [int(rank), self.form(name).expr, vals, dict(sorted(training.items()))],
            default=str,
        )


def screen(
    form: Form,
    values: Mapping[str, float],
    require: Sequence[tuple[str, float | None]],
    interval: tuple[float, float],
) -> str | None:
    """The refusal of a form (``"<rule>: <value>"``), or ``None`` when every rule passes.

    Uses the symbolic audit (:func:`activations.audit.audit_formula`: ``f(0)``, the
    oscillation-aware grid of ``f'``, the Lipschitz estimate) and a value grid of ``f``
    (module doc, *Screening*).
    """
    rules = dict(require)
    span = f"[{interval[0]:.3g}, {interval[1]:.3g}]"
    if not form.defined:
        return f"finite: the form {form.tree} is undefined (sympy: division by zero or not real)"
    import numpy as np
    import sympy as sp

    from loran_search.activations.audit import audit_formula
    from loran_search.activations.formula import X, compile_expr, parse_formula

    expr = parse_formula(form.expr, list(values))
    if canonical_expr(expr) == X:
        return "identity: the form reduces to f(x) = x, the baseline (LoRA)"
    fixed = canonical_expr(expr.subs({sp.Symbol(k, real=True): v for k, v in values.items()}))
    if fixed.has(X) and sp.diff(fixed, X, 2) == 0:
        slope = sp.diff(fixed, X)
        return (
            f"linear: the form reduces to f(x) = {fixed} at these values, a linear map: "
            f"ΔW = s·f(B·A) is plain LoRA with its step rescaled by f' = {float(slope):.6g} "
            "(inert, nothing non-linear to learn); give the template a non-linear term"
        )
    result = audit_formula(form.expr, dict(values), interval=interval, name=form.name)
    if "starts_at_zero" in rules and not result.starts_at_zero:
        return f"starts_at_zero: f(0) = {result.f0:.4g} ≠ 0, so ΔW = s·f(B·A) ≠ 0 when B = 0"
    if "finite" in rules:
        f = compile_expr(
            expr.subs({sp.Symbol(k, real=True): v for k, v in values.items()}), "numpy"
        )
        xs = np.concatenate([np.linspace(interval[0], interval[1], FINITE_GRID), [0.0]])
        with np.errstate(all="ignore"):
            ys = np.asarray(f(xs), dtype=float) * np.ones_like(xs)
        bad = ~np.isfinite(ys)
        if bad.any():
            return f"finite: f({float(xs[bad][0]):.4g}) = {float(ys[bad][0])} on {span}"
        if not math.isfinite(result.f0):
            return f"finite: f(0) = {result.f0}"
        if result.singularities:
            return f"finite: {result.singularities[0]}"
        if not math.isfinite(result.lipschitz):
            where = next((w for w in result.warnings if w.startswith("f' is not finite")), "")
            return f"finite: f' is not finite on {span}" + (f" ({where})" if where else "")
        if result.lipschitz > FINITE_SLOPE:
            return (
                f"finite: |f'| reaches {result.lipschitz:.4g} on {span} (above {FINITE_SLOPE:g}): "
                "a pole or a near-singularity the symbolic search could not place; a form this "
                "steep is not finite in float32"
            )
    cap = rules.get("max_lipschitz")
    if cap is not None and not result.lipschitz <= cap:
        return f"max_lipschitz: |f'| reaches {result.lipschitz:.4g} on {span} > {cap:g}"
    return None


# ------------------------------------------------------------------------------ the trial


@dataclass
class Verdict:
    """What the form step decided before training.

    Attributes:
        kind: ``screened`` (refused), ``duplicate`` (answered from ``twin``).
        message: The sentence recorded in ``failure`` / ``pruned``.
        state: The twin's state name (a duplicate): ``COMPLETE``, ``PRUNED`` or ``FAIL``.
        values: The twin's values (a COMPLETE duplicate).
        failure_kind: The twin's failure kind (a FAIL duplicate).
        twin: The twin's number.
    """

    kind: str
    message: str
    state: str = "FAIL"
    values: list[float] | None = None
    failure_kind: str | None = None
    twin: int | None = None


def _form_attr(t: FrozenTrial) -> Mapping[str, Any]:
    value = t.user_attrs.get(R.FORM)
    return value if isinstance(value, Mapping) else {}


def _order(t: FrozenTrial) -> tuple[float, int]:
    """Who proposed first: the time it started running, then its number."""
    start = t.datetime_start.timestamp() if t.datetime_start is not None else math.inf
    return (start, t.number)


def find_twin(trials: Sequence[FrozenTrial], number: int, key: str) -> FrozenTrial | None:
    """The trial a proposal with ``key`` is answered from (module doc), or ``None``.

    A COMPLETE, PRUNED or configuration-FAIL candidate with the key (not itself a duplicate;
    the lowest-numbered), else the RUNNING one with the key that started first, when it started
    before trial ``number`` (a trial started later defers to this one).
    """
    from optuna.trial import TrialState

    me = next((t for t in trials if t.number == number), None)
    mine = _order(me) if me is not None else (math.inf, number)
    done, running = [], []
    for t in trials:
        if t.number == number or _form_attr(t).get("key") != key:
            continue
        if t.user_attrs.get(R.ROLE) != R.ROLE_CANDIDATE or R.DUPLICATE_OF in t.user_attrs:
            continue
        kind = t.user_attrs.get(R.FAILURE_KIND)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
            t.state == TrialState.FAIL and kind in R.COUNTED_FAILURES and kind != R.FAIL_SCREENED
        ):
            done.append(t)
        elif t.state == TrialState.RUNNING and _order(t) < mine:
            running.append(t)
    if done:
        return min(done, key=lambda t: t.number)
    return min(running, key=_order) if running else None


def undeclared(trials: Sequence[FrozenTrial], number: int) -> list[FrozenTrial]:
    """RUNNING candidates that started before trial ``number`` and may be a form not declared yet.

    A form trial writes its key right after its parameters are sampled; until then (no
    ``form`` attr, and no ``activation`` param or ``activation`` = ``"form"``) it may hold the
    same key, so a later trial waits for it to say (:func:`before_training`).
    """
    from optuna.trial import TrialState

    me = next((t for t in trials if t.number == number), None)
    mine = _order(me) if me is not None else (math.inf, number)
    return [
        t
        for t in trials
        if t.state == TrialState.RUNNING
        and t.number != number
        and _order(t) < mine
        and t.user_attrs.get(R.ROLE, R.ROLE_CANDIDATE) == R.ROLE_CANDIDATE
        and not _form_attr(t)
        and t.params.get(R.PARAM_ACTIVATION, FORM_CHOICE) == FORM_CHOICE
    ]


def _worker_gone(t: FrozenTrial) -> bool:
    """The twin's worker ran on this host and is gone (its trial will never end by itself)."""
    from loran_search.search.recovery import worker_gone

    return worker_gone(t.system_attrs.get(R.WORKER))


def before_training(
    trial: Trial,
    forms: FormSpace,
    name: str,
    values: Mapping[str, Any],
    rank: int,
    training: Mapping[str, Any],
    *,
    role: str,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict | None:
    """Record the form, screen it and look for a twin; ``None``: train it.

    Sets ``user_attrs["form"] = {name, expr, tree, key}`` and (for a candidate) the screen's
    interval. Confirmation trials are neither screened nor deduplicated (their form passed).
    """
    from optuna.trial import TrialState

    form = forms.form(name)
    key = forms.key(name, values, rank, training)
    attr: dict[str, Any] = {"name": form.name, "expr": form.expr, "tree": form.tree, "key": key}
    study = trial.study
    if role != R.ROLE_CANDIDATE:
        trial.set_user_attr(R.FORM, attr)
        return None
    snapshot = study.get_trials(deepcopy=False)
    interval = R.visited_range(snapshot, rank)
    attr["interval"] = list(interval)
    trial.set_user_attr(R.FORM, attr)  # the key is written before the twins are read
    refusal = screen(form, {k: float(v) for k, v in values.items()}, forms.require, interval)
    if refusal is not None:
        return Verdict(R.FAIL_SCREENED, refusal)
    deadline = time.monotonic() + DECLARE_TIMEOUT
    while True:
        trials = study.get_trials(deepcopy=False)
        twin = find_twin(trials, trial.number, key)
        if twin is not None:
            if twin.state != TrialState.RUNNING:
                break  # answer from it
            if _worker_gone(twin):
                return None  # it will never end: train the form here
            sleep(POLL)  # the twin is training: its result answers this proposal
            continue
        waiting = [t for t in undeclared(trials, trial.number) if not _worker_gone(t)]
        if not waiting or time.monotonic() > deadline:
            return None
        sleep(POLL)  # an earlier proposal has not written its form's key yet
    trial.set_user_attr(R.DUPLICATE_OF, int(twin.number))
    said = (
        f"deduplicated: the same canonical formula and parameter values as trial {twin.number} "
        f"({form.expr}); answered from its record, not trained again"
    )
    if twin.state == TrialState.COMPLETE:
        trial.set_user_attr(R.DEDUPLICATED, said)
        return Verdict("duplicate", said, "COMPLETE", list(twin.values), twin=twin.number)
    if twin.state == TrialState.PRUNED:
        return Verdict("duplicate", said, "PRUNED", twin=twin.number)
    kind = str(twin.user_attrs.get(R.FAILURE_KIND))
    return Verdict("duplicate", said, "FAIL", failure_kind=kind, twin=twin.number)
