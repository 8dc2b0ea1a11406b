"""A law's formula as text, parsed without ``eval`` and evaluated with numpy or pytensor.

A formula is Python arithmetic on names: numbers, ``+ - * / **``, unary minus, parentheses and the
functions ``exp``, ``log``, ``sqrt``, ``minimum`` and ``maximum``. Lines (or ``;``-separated parts)
of the form ``name = expression`` define intermediate quantities; the last part is the loss::

    D_eff = unique_tokens * (1 + R_D * (1 - exp(-(tokens / unique_tokens - 1) / R_D)))
    E + A / params**alpha + B / D_eff**beta

The text is parsed with :func:`ast.parse` and walked node by node: anything else (attributes,
subscripts, comparisons, lambdas, other calls) is refused with :class:`~bayes_scaling.errors.LawError`,
so a formula read from a fit file cannot run code. Because the same tree is evaluated with ``xp``
(``numpy`` or ``pytensor.tensor``), the model and the prediction share one definition.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import LawError

#: the functions a formula may call, each with its number of arguments
FUNCTIONS = {"exp": 1, "log": 1, "sqrt": 1, "minimum": 2, "maximum": 2}

_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a**b}


@dataclass(frozen=True)
class Expression:
    """A parsed formula: its definitions (name, tree), the loss tree, and the free names it reads."""

    text: str
    definitions: tuple[tuple[str, ast.expr], ...] = field(repr=False)
    result: ast.expr = field(repr=False)
    names: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> "Expression":
        if not isinstance(text, str) or not text.strip():
            raise LawError("a law's formula must be a non-empty string, e.g. 'E + A / params**alpha + B / tokens**beta'")
        try:
            tree = ast.parse(text.strip(), mode="exec")
        except SyntaxError as err:
            raise LawError(f"the formula {text!r} is not valid arithmetic: {err.msg} (line {err.lineno}). Write it "
                           "with + - * / ** and parentheses, one 'name = expression' per line before the loss") from None
        body = tree.body
        if not body or not isinstance(body[-1], ast.Expr):
            raise LawError(f"the formula {text!r} must end with the loss expression (not an assignment)")
        definitions, defined, free = [], set(), set()
        for stmt in body[:-1]:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
                raise LawError(f"in the formula {text!r}, each line before the loss must be 'name = expression'; "
                               f"got {ast.unparse(stmt)!r}")
            name = stmt.targets[0].id
            free |= _check(stmt.value, text) - defined
            if name in FUNCTIONS or name in defined:
                raise LawError(f"in the formula {text!r}, {name!r} is defined twice or is a function's name")
            defined.add(name)
            definitions.append((name, stmt.value))
        free |= _check(body[-1].value, text) - defined
        return cls(text=text.strip(), definitions=tuple(definitions), result=body[-1].value, names=frozenset(free))

    def evaluate(self, values: Mapping[str, Any], xp: Any) -> Any:
        """The loss with ``values`` for the free names (arrays that broadcast), computed with ``xp``."""
        env = dict(values)
        for name, node in self.definitions:
            env[name] = _eval(node, env, xp)
        return _eval(self.result, env, xp)

    def power_sum(self) -> tuple[str, tuple[tuple[str, str, str], ...]] | None:
        """``(level, ((amplitude, exponent, input), ...))`` when the formula is ``level + sum of amplitude *
        input**-exponent`` (also written ``amplitude / input**exponent``) in plain names; else None."""
        if self.definitions:
            return None
        parts: list[ast.expr] = []
        _flatten_sum(self.result, parts)
        levels, terms = [], []
        for p in parts:
            if isinstance(p, ast.Name):
                levels.append(p.id)
                continue
            term = _power_term(p)
            if term is None:
                return None
            terms.append(term)
        if len(levels) != 1 or not terms:
            return None
        return levels[0], tuple(terms)


def _check(node: ast.AST, text: str) -> set[str]:
    """The free names ``node`` reads; raise for any construct a formula may not use."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise LawError(f"the formula {text!r} holds {node.value!r}; only numbers and names are allowed")
        return set()
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise LawError(f"in the formula {text!r}, {node.id!r} is a function: call it, e.g. {node.id}(x)")
        return {node.id}
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _check(node.left, text) | _check(node.right, text)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _check(node.operand, text)
    if isinstance(node, ast.Call):
        fn = node.func.id if isinstance(node.func, ast.Name) else None
        if fn not in FUNCTIONS or node.keywords or len(node.args) != FUNCTIONS[fn]:
            raise LawError(f"in the formula {text!r}, {ast.unparse(node)!r} is not allowed; the functions are "
                           + ", ".join(f"{k}({', '.join('xy'[:n])})" for k, n in FUNCTIONS.items()))
        return set().union(*(_check(a, text) for a in node.args))
    raise LawError(f"in the formula {text!r}, {ast.unparse(node)!r} is not allowed: a formula is arithmetic "
                   "(+ - * / **), numbers, names and the functions " + ", ".join(FUNCTIONS))


def _eval(node: ast.expr, env: Mapping[str, Any], xp: Any) -> Any:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, env, xp), _eval(node.right, env, xp))
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, env, xp)
        return -v if isinstance(node.op, ast.USub) else v
    fn = getattr(xp, node.func.id)  # type: ignore[union-attr]  # a checked call
    return fn(*(_eval(a, env, xp) for a in node.args))


def _flatten_sum(node: ast.expr, out: list[ast.expr]) -> None:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        _flatten_sum(node.left, out)
        _flatten_sum(node.right, out)
    else:
        out.append(node)


def _power_term(node: ast.expr) -> tuple[str, str, str] | None:
    """(amplitude, exponent, input) of ``amp * x**-e``, ``x**-e * amp`` or ``amp / x**e``; else None."""
    if not isinstance(node, ast.BinOp):
        return None
    if isinstance(node.op, ast.Div) and isinstance(node.left, ast.Name):
        base = _power(node.right, negative=False)
        return None if base is None else (node.left.id, base[1], base[0])
    if isinstance(node.op, ast.Mult):
        for amp, powr in ((node.left, node.right), (node.right, node.left)):
            base = _power(powr, negative=True)
            if isinstance(amp, ast.Name) and base is not None:
                return amp.id, base[1], base[0]
    return None


def _power(node: ast.expr, *, negative: bool) -> tuple[str, str] | None:
    """(input, exponent) of ``x**e`` (``x**-e`` when ``negative``) in plain names; else None."""
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and isinstance(node.left, ast.Name)):
        return None
    expo = node.right
    if negative:
        if not (isinstance(expo, ast.UnaryOp) and isinstance(expo.op, ast.USub)):
            return None
        expo = expo.operand
    return (node.left.id, expo.id) if isinstance(expo, ast.Name) else None
