"""Reading a YAML study text safely, and where every key of it came from.

A study file is read in one pass that refuses, before anything is built, what no study needs
and what would exhaust memory or recursion: a file over :data:`MAX_STUDY_FILE_BYTES`, text
that is not UTF-8, aliases that expand beyond :data:`MAX_YAML_NODES` values ("billion
laughs"), nesting deeper than :data:`MAX_YAML_DEPTH`. The document is composed once: the node
graph gives the 1-based line of every key and item, the same graph gives the data. ``1e-3``
reads as a float (YAML 1.1 would read a string). :func:`set_values` applies ``--set KEY=VALUE``
overrides under the same limits, and :class:`Context` collects every later error with its
place, ``FILE:LINE path`` or ``--set KEY (path)``.

Every refusal names the place, the limit and the fix. This module knows YAML, not the study
schema (:mod:`loran_search.config`); it imports only the standard library and PyYAML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

#: A place in a document: mapping keys and list indices from the top, e.g.
#: ``("search", "activations", 0)``.
KeyPath = tuple[Any, ...]
#: A problem as ``(location, message)``; the location reads ``FILE``, ``FILE:LINE`` or
#: ``FILE:LINE:COLUMN``.
Problem = tuple[str, str]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads ``1e-3`` as a float.

    YAML 1.1 (PyYAML) reads ``1e-3`` as the *string* "1e-3" because its float pattern needs a
    dot; study files and ``--set sinter.amplitude=1e-3`` would otherwise fail in surprising ways.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


#: The largest study file read, in bytes (1 MiB): a study is a page of settings, and a larger
#: file (e.g. 50 MB of comments) would only spend the parser's time and memory.
MAX_STUDY_FILE_BYTES = 1 << 20
#: The most YAML nodes a study file or a ``--set`` value may hold once every alias (``*name``)
#: is counted as a copy of its anchor (``&name``): a "billion laughs" file of 1.7 kB expands
#: to 10⁹ nodes, a real study to a few hundred.
MAX_YAML_NODES = 100_000
#: The deepest nesting of mappings and lists in a study file, a ``--set`` value or a
#: ``--set`` key path (a study nests 5 levels deep; the limit keeps every recursive walk safe).
MAX_YAML_DEPTH = 64


class YamlLimitError(ValueError):
    """A YAML text beyond :data:`MAX_YAML_NODES` or :data:`MAX_YAML_DEPTH`.

    Attributes:
        line: The 1-based line where the limit was passed (``None`` when unknown).
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def check_yaml_limits(text: str) -> None:
    """Refuse a YAML text whose aliases expand too far or whose nesting is too deep.

    One pass over the parser's events, iterative and without building anything: each node
    counts 1, an alias counts the expanded size of its anchor (recorded when the anchored node
    ends), so the expanded size N = (number of nodes) + Σ_aliases |anchor| is known without
    expanding it; the scan stops as soon as
    N > :data:`MAX_YAML_NODES` or the depth passes :data:`MAX_YAML_DEPTH`. An alias to
    an anchor that is still open (a recursive structure) is refused too. Syntax errors are left
    to the loader, which reports them with their line.

    Raises:
        YamlLimitError: With the line, the limit and the fix.
    """
    depth = _flow_depth(text)
    if depth > MAX_YAML_DEPTH:
        raise YamlLimitError(_depth_message(f"{depth} brackets ([ or {{) deep"))
    sizes: dict[str, int] = {}
    stack: list[list[Any]] = []  # [expanded size so far, anchor] of each open collection
    total = 0
    events = yaml.parse(text, Loader=_Loader)
    try:
        for event in events:
            line = event.start_mark.line + 1 if event.start_mark is not None else None
            if isinstance(event, yaml.CollectionStartEvent):
                stack.append([1, event.anchor])
                total += 1
                if len(stack) > MAX_YAML_DEPTH:
                    raise YamlLimitError(
                        _depth_message(f"more than {MAX_YAML_DEPTH} levels deep"), line
                    )
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                size, anchor = stack.pop()
                if anchor is not None:
                    sizes[anchor] = size
                if stack:
                    stack[-1][0] += size
                continue
            if isinstance(event, yaml.AliasEvent):
                if any(anchor == event.anchor for _, anchor in stack):
                    raise YamlLimitError(
                        f"The alias *{event.anchor} refers to the node it is in, "
                        "a recursive structure no setting means. Write the value out.",
                        line,
                    )
                size = sizes.get(event.anchor, 1)  # an unknown anchor: the loader says so
            elif isinstance(event, yaml.ScalarEvent):
                size = 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            else:
                continue
            total += size
            if stack:
                stack[-1][0] += size
            if total > MAX_YAML_NODES:
                raise YamlLimitError(
                    f"The YAML expands to more than {MAX_YAML_NODES:,} values once its aliases "
                    "(*name) are replaced by their anchors (&name); a "
                    "study holds a few hundred, and expanding this one would exhaust memory "
                    "(a 'billion laughs' document). Write the values out or use fewer aliases "
                    "(the limit is loran_search.config.MAX_YAML_NODES).",
                    line,
                )
    except yaml.YAMLError:
        return  # the loader reports the syntax error with its line
    finally:
        events.close()


def _depth_message(how: str) -> str:
    return (
        f"The YAML nests mappings and lists {how}; a study nests about 5 and at most "
        f"{MAX_YAML_DEPTH} levels are read (loran_search.config.MAX_YAML_DEPTH). Flatten it."
    )


def _flow_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` outside quotes and comments (a cheap upper bound).

    PyYAML's scanner takes time quadratic in the depth of flow collections (``[[[…]]]``)
    before it yields the first event, so this bound is checked first, in one linear pass.
    """
    depth = deepest = 0
    quote = ""
    comment = False
    previous = "\n"
    for c in text:
        if comment:
            comment = c != "\n"
        elif quote:
            if c == quote:
                quote = ""
        elif c in "'\"" and previous in " \t\n[{,:":
            quote = c
        elif c == "#" and previous in " \t\n":
            comment = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth = max(depth - 1, 0)
        previous = c
    return deepest


def parse_yaml_value(text: str) -> Any:
    """Parse an override value as YAML (``1e-3`` → float, ``[8, 16]`` → list, ``x`` → str).

    Raises:
        YamlLimitError: The value nests too deep or its aliases expand too far
            (:func:`check_yaml_limits`).
    """
    check_yaml_limits(text)
    return yaml.load(text, Loader=_Loader)


def dotted(path: Sequence[Any]) -> str:
    """``("search", "activations", 0)`` → ``search.activations[0]``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


class Context:
    """Collects errors with their location: ``FILE:LINE dotted.path`` or ``--set KEY``."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[KeyPath, int] = {}
        self.overridden: dict[KeyPath, str] = {}
        self.errors: list[Problem] = []
        #: What one section's check learnt for a later section's check, in this parse only
        #: (e.g. the model's layers, read once for the adapter and the rank).
        self.shared: dict[str, Any] = {}

    def loc(self, path: Sequence[Any]) -> str:
        """Where ``path`` is: ``--set KEY (path)``, ``FILE:LINE path`` or ``FILE path``."""
        path = tuple(path)
        for i in range(len(path), 0, -1):
            if path[:i] in self.overridden:
                return f"--set {self.overridden[path[:i]]} ({dotted(path)})"
        for i in range(len(path), -1, -1):
            if path[:i] in self.lines:
                return f"{self.file}:{self.lines[path[:i]]} {dotted(path)}"
        return f"{self.file} {dotted(path)}"

    def err(self, path: Sequence[Any], message: str) -> None:
        """Record one error at ``path``."""
        self.errors.append((self.loc(path), message))

    def err_each(self, problems: Sequence[tuple[Sequence[Any], str]]) -> None:
        """Record every ``(path, message)`` problem (e.g. of ``config.unknown_key_problems``)."""
        for path, message in problems:
            self.err(path, message)


def set_values(
    data: dict[str, Any],
    overrides: Sequence[str],
    ctx: Context,
    path_of: Callable[[str], KeyPath],
) -> None:
    """Apply ``KEY=VALUE`` overrides (``--set``) to ``data`` in place; problems go to ``ctx``.

    ``VALUE`` is parsed as YAML (``1e-3``, ``[8, 16]``, ``{low: 1e-5, high: 1e-3}``, ``null``)
    within the limits of :func:`check_yaml_limits`; ``path_of(KEY)`` says where it is written
    (it raises ``ValueError`` with the fix for a key it cannot place). Missing mappings on the
    way are created; ``ctx`` remembers each written path, so a later error there reads
    ``--set KEY (path)`` instead of a file line.
    """
    for text in overrides:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            ctx.errors.append(
                (f"--set {text}", "Expected KEY=VALUE, e.g. --set training.max_steps=20.")
            )
            continue
        try:
            path = path_of(key)
            if len(path) > MAX_YAML_DEPTH:
                raise ValueError(
                    f"The key path has {len(path)} parts; at most {MAX_YAML_DEPTH} are allowed "
                    "(a study nests about 5 levels). Give the key of a real setting, e.g. "
                    "training.max_steps."
                )
            value = parse_yaml_value(raw)
        except ValueError as err:
            ctx.errors.append((f"--set {text}", str(err)))
            continue
        except yaml.YAMLError as err:
            ctx.errors.append((f"--set {text}", f"The value is not valid YAML: {err}"))
            continue
        node: Any = data
        for i, part in enumerate(path[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                what = f"{dotted(path[: i + 1])} is {type(child).__name__} {child!r}"
                ctx.errors.append((f"--set {text}", f"Cannot set '{key}': {what}, not a mapping."))
                break
            node = child
        else:
            node[path[-1]] = value
            ctx.overridden[tuple(path)] = key


class YamlReadError(ValueError):
    """A study text that cannot be read: too large, not UTF-8, beyond a limit, or bad syntax.

    Attributes:
        location: ``FILE``, ``FILE:LINE`` or ``FILE:LINE:COLUMN``.
    """

    def __init__(self, location: str, message: str) -> None:
        super().__init__(message)
        self.location = location


def read_yaml(ctx: Context, text: str | None = None) -> Any:
    """Read the YAML file ``ctx.file`` (or ``text``, with ``ctx.file`` naming it in messages).

    The line of every key and item goes to ``ctx.lines``; a duplicate key (YAML keeps the last
    one) is an error in ``ctx``.

    Returns:
        The document (``None`` when it holds nothing).

    Raises:
        YamlReadError: The text is too large, not UTF-8, beyond a limit or not valid YAML;
            the location and a fix are in the error.
    """
    file = ctx.file
    kind = "study file" if text is None else "study text"
    too_big = (
        f"The {kind} is larger than {MAX_STUDY_FILE_BYTES:,} bytes (1 MiB, "
        "loran_search.config.MAX_STUDY_FILE_BYTES), which no study needs (a study is a page of "
        "settings); it is not read. Check that FILE is the study YAML, and move long notes or "
        "data out of it."
    )
    if text is None:
        text = _read_text(file, too_big)
    elif len(text) > MAX_STUDY_FILE_BYTES or len(text.encode("utf-8")) > MAX_STUDY_FILE_BYTES:
        raise YamlReadError(file, too_big)
    try:
        check_yaml_limits(text)
    except YamlLimitError as err:
        raise YamlReadError(file if err.line is None else f"{file}:{err.line}", str(err)) from err
    try:
        loader = _Loader(text)
        try:  # one composition: the node graph for the lines, the same graph for the data
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        what = " ".join(x for x in (err.context, err.problem) if x)
        cm = err.context_mark
        if cm is not None and mark is not None and cm.line != mark.line:
            what += f" (the construct started at line {cm.line + 1}, column {cm.column + 1})"
        raise YamlReadError(
            where,
            f"YAML syntax error: {what}. Check the indentation (spaces, not tabs) and quote "
            "strings that contain ':' or '#'.",
        ) from err
    except yaml.YAMLError as err:
        raise YamlReadError(file, f"YAML error: {err}") from err
    if node is not None:
        _map_lines(node, (), ctx)
    return data


def _read_text(file: str, too_big: str) -> str:
    """The UTF-8 text of ``file``, reading at most one byte past :data:`MAX_STUDY_FILE_BYTES`."""
    try:
        with open(file, "rb") as fh:  # one byte past the limit: never the whole file
            raw = fh.read(MAX_STUDY_FILE_BYTES + 1)
    except FileNotFoundError as err:
        raise YamlReadError(file, f"No such file. Check the path (cwd: {Path.cwd()}).") from err
    except OSError as err:
        raise YamlReadError(file, f"Cannot read the file: {err}") from err
    if len(raw) > MAX_STUDY_FILE_BYTES:
        raise YamlReadError(file, too_big)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        column = err.start - raw.rfind(b"\n", 0, err.start)
        raise YamlReadError(
            f"{file}:{line}:{column}",
            f"The file is not UTF-8 text: byte 0x{raw[err.start]:02x} at offset {err.start} "
            f"(line {line}, column {column}) cannot be decoded. Save the file as UTF-8 "
            "(e.g. `iconv -f latin1 -t utf-8 FILE > NEW` for a Latin-1 file).",
        ) from err


def _map_lines(node: yaml.Node, path: KeyPath, ctx: Context) -> None:
    """Record the 1-based line of every key and item; report duplicate keys."""
    ctx.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for knode, vnode in node.value:
            key = knode.value
            line = knode.start_mark.line + 1
            if key in seen:
                ctx.errors.append(
                    (
                        f"{ctx.file}:{line} {dotted((*path, key))}",
                        f"Duplicate key '{key}': YAML keeps only the last one. Remove one.",
                    )
                )
            seen.add(key)
            ctx.lines[(*path, key)] = line
            _map_lines(vnode, (*path, key), ctx)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _map_lines(item, (*path, i), ctx)
