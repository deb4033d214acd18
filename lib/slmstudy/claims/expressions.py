"""The arithmetic a claim is checked with: numbers, named inputs, + - * / ** and
parentheses, evaluated here (never typed in by hand) and shown with the inputs
written in so a reader can redo it."""

from __future__ import annotations

import ast
import math
import operator

from .format import fmt_in_expression

CONSTANTS = {"pi": math.pi}
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNOPS = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def _parse(expression: str) -> ast.Expression:
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"expression {expression!r} does not parse: {exc.msg}") from None
    for node in ast.walk(tree):
        ok = isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Load,
                               *_BINOPS, *_UNOPS))
        ok = ok or (isinstance(node, ast.Constant) and isinstance(node.value, (int, float)))
        if not ok:
            raise ValueError(f"expression {expression!r}: only numbers, names, + - * / ** and "
                             f"parentheses are allowed, not {type(node).__name__}")
    return tree


def names(expression: str) -> set[str]:
    return {n.id for n in ast.walk(_parse(expression)) if isinstance(n, ast.Name)}


def evaluate(expression: str, values: dict[str, float]) -> float:
    env = {**CONSTANTS, **values}

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp):
            return _UNOPS[type(node.op)](ev(node.operand))
        raise ValueError(f"unexpected {type(node).__name__}")  # _parse admits nothing else

    return float(ev(_parse(expression)))


def substituted(expression: str, values: dict[str, float]) -> str:
    """The expression with its inputs written in, for the reason a reader sees."""
    tree = _parse(expression)

    class Sub(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            return ast.Name(id=fmt_in_expression(values[node.id]), ctx=node.ctx) if node.id in values else node

        def visit_Constant(self, node: ast.Constant) -> ast.AST:
            return ast.Name(id=fmt_in_expression(node.value), ctx=ast.Load())

    return ast.unparse(Sub().visit(tree))
