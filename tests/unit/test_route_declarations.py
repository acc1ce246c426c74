"""Each route reads its body and query string only through the models it declares, so its OpenAPI
document is what it does: a handler calling `ctx.body(Model)` (or a helper of its that does) on a route
that declares another body, or none, fails here with the route named, not as a 500 at run time.

The handlers' sources are read with `inspect`, following the functions they call (module functions
and the closures of build_router) two levels deep."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared.contracts.openapi import routers
from shared.http import Route, Upload

ROUTES = [(api, route) for api, router in sorted(routers().items()) for route in router.routes]


def _source_tree(function: Callable[..., Any]) -> ast.AST | None:
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return None
    try:
        return ast.parse(source)
    except SyntaxError:  # a lambda's line: parse the expression it sits in
        return ast.parse(source.strip().rstrip(",").lstrip(")").strip() or "None", mode="exec")


def _callees(function: Callable[..., Any]) -> dict[str, Any]:
    names: dict[str, Any] = dict(function.__globals__)
    cells = function.__closure__ or ()
    names.update(zip(function.__code__.co_freevars, (c.cell_contents for c in cells), strict=True))
    return names


def _reads(function: Callable[..., Any], depth: int = 0) -> Iterator[tuple[str, str]]:
    """("body" or "query", model name) for every ctx.body(M) / ctx.query(M) the function may run."""
    tree = _source_tree(function)
    if tree is None:
        return
    callees = _callees(function)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        target = node.func
        is_ctx = isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
        if is_ctx and target.value.id == "ctx" and target.attr in ("body", "query") and node.args:  # type: ignore[attr-defined]
            yield target.attr, ast.unparse(node.args[0])  # type: ignore[attr-defined]
        if isinstance(target, ast.Name) and depth < 2:
            callee = callees.get(target.id)
            if inspect.isfunction(callee) and callee.__module__.startswith("functions."):
                yield from _reads(callee, depth + 1)


def _declared_name(declared: Any) -> str | None:
    if declared is None or isinstance(declared, Upload):
        return None
    return str(declared.__name__)


@pytest.mark.parametrize(
    "case", ROUTES, ids=[f"{api}:{route.method}:{route.template}" for api, route in ROUTES]
)
def test_a_handler_reads_only_the_body_and_query_its_route_declares(case: tuple[str, Route]) -> None:
    _, route = case
    handler = route.handler
    reads = set(_reads(handler))
    for callee in _callees(handler).values():  # a handler made by a factory: its action (a lambda)
        if inspect.isfunction(callee) and callee.__name__ == "<lambda>":
            reads |= set(_reads(callee))
    for part, model in sorted(reads):
        declared = _declared_name(getattr(route, part))
        assert declared is not None, (
            f"{route.method} {route.template} reads ctx.{part}({model}): declare {part}={model}"
        )
        assert model.rsplit(".", 1)[-1] == declared, (
            f"{route.method} {route.template} reads ctx.{part}({model}) but declares {part}={declared}"
        )
