"""Counted nouns in proper English: ``1 seed``, ``3 seeds`` — never ``seed(s)`` (issue 22).

The report's sentences name counts that vary from study to study; :func:`count` picks the
singular for exactly one and the plural otherwise (``0 trials``, ``1 trial``, ``2 trials``).
"""

from __future__ import annotations

#: Irregular plurals the report uses.
_IRREGULAR = {"was": "were", "is": "are", "has": "have", "this": "these", "it": "they"}


def plural(n: int | float, singular: str, plural_form: str | None = None) -> str:
    """``singular`` when ``n == 1``, else ``plural_form`` (default: ``singular + "s"``)."""
    if n == 1:
        return singular
    if plural_form is not None:
        return plural_form
    if singular in _IRREGULAR:
        return _IRREGULAR[singular]
    if singular.endswith(("s", "x", "ch", "sh")):
        return singular + "es"
    if singular.endswith("y") and singular[-2:-1] not in "aeiou":
        return singular[:-1] + "ies"
    return singular + "s"


def count(n: int | float, singular: str, plural_form: str | None = None) -> str:
    """``"1 seed"``, ``"3 seeds"``: the number and the noun in its right form.

    Only the last word is inflected (``count(2, "confirmed configuration")`` →
    ``"2 confirmed configurations"``).
    """
    number = f"{int(n)}" if float(n) == int(n) else f"{n:g}"
    head, _, last = singular.rpartition(" ")
    word = plural(n, last, plural_form.rpartition(" ")[2] if plural_form else None)
    return f"{number} {head + ' ' if head else ''}{word}"
