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

The YAML checks of ``search.forms`` (:func:`check_grammar`) are here too. The Optuna side of
the grammar (sampling a tree, the grid of forms, registering a form) is
:mod:`loran_search.search.forms`; screening and the cross-worker dedup are
:mod:`loran_search.search.screening`. This module imports sympy lazily (importing it is
cheap).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loran_search import record as R

if TYPE_CHECKING:
    import sympy as sp

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
#: A tree: a leaf index, or ``(operator, left, right)``.
Tree = int | tuple[str, "Tree", "Tree"]


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


def canonical_form(expr: sp.Expr, names: Sequence[str], tree: str, template: str) -> Form:
    """The canonical :class:`Form` of ``template[G := tree]`` built as ``expr`` (module doc).

    The canonical formula is printed in the parser's language and read back; when printing
    rounded a float, the text read back is the form. An undefined ``expr`` (:func:`undefined`)
    gives a form with ``defined=False`` (it is screened, never trained).

    Raises:
        FormError: The canonical formula cannot be written in, or read back from, the formula
            language.
    """
    if undefined(expr):
        return Form(
            form_name("undefined|" + tree), f"{template} with G = {tree}", (), tree, defined=False
        )
    from loran_search.activations.formula import FormulaError, parse_formula

    canon = canonical_expr(expr)
    printed = _printer().doprint(canon)
    try:
        again = canonical_expr(parse_formula(printed, list(names)))
    except FormulaError as err:
        raise FormError(f"The form {printed!r} cannot be read back: {err}") from err
    if again != canon:  # printing rounded a float: the text read back is the form
        printed = _printer().doprint(again)
        canon = again
    used = tuple(sorted(s.name for s in canon.free_symbols if s.name != "x"))
    return Form(form_name(printed), printed, used, tree)


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
