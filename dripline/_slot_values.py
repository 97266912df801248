"""Slot expressions evaluated in plain Python when Jinja would do nothing more than look up.

The fast path (:mod:`dripline._slots`) evaluates each per-subscriber expression once
per message. Through Jinja that builds a template context per call, a large share
of a message's cost, for expressions that are nearly always ``unsubscribe_url`` or
``subscriber.first_name | default("there")``. :func:`plain_getter` turns such an
expression (a name, attribute lookups on it, an optional ``default`` filter with a
constant) into a function on the context dict. It answers only where it gives
exactly what the sandboxed Jinja environment would (a present name, a key of a
plain ``dict`` that is no ``dict`` attribute); anything else returns :data:`ASK_JINJA`
and the caller evaluates the expression through Jinja as before (which also raises
its errors: a misspelt name is StrictUndefined there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["ASK_JINJA", "plain_getter"]

ASK_JINJA: Any = object()  # "not sure: evaluate it through Jinja"
_MISSING: Any = object()  # the key is absent: Jinja's Undefined
_DICT_ATTRIBUTES = frozenset(dir(dict))

Getter = Callable[[dict[str, Any]], Any]


def plain_getter(env: ImmutableSandboxedEnvironment, source: str) -> Getter | None:
    """A plain-Python evaluation of ``source`` on a context dict, or None when it has
    a shape this does not handle (then only Jinja evaluates it)."""
    try:
        template = env.parse("{{ " + source + " }}")
    except Exception:  # a syntax error: Jinja reports it where the expression is used
        return None
    if len(template.body) != 1 or not isinstance(template.body[0], nodes.Output):
        return None
    outputs = template.body[0].nodes
    if len(outputs) != 1:
        return None
    node = outputs[0]
    fallback: tuple[Any] | None = None
    if isinstance(node, nodes.Filter):
        fallback = _default_argument(node)
        if fallback is None:
            return None
        node = node.node
    path = _lookup_path(node)
    if path is None:
        return None
    name, attributes = path
    if any(a in _DICT_ATTRIBUTES or a.startswith("_") for a in attributes):
        return None  # Jinja would find (or refuse) a dict attribute, not the key

    def get(context: dict[str, Any]) -> Any:
        value = context.get(name, _MISSING)
        if value is _MISSING:
            return ASK_JINJA  # a global, or StrictUndefined's error
        last = len(attributes) - 1
        for position, attribute in enumerate(attributes):
            if type(value) is not dict:
                return ASK_JINJA
            value = value.get(attribute, _MISSING)
            if value is _MISSING:
                if fallback is None or position != last:
                    return ASK_JINJA  # Undefined, or an error looking into it
                return fallback[0]  # `default` replaces an undefined value
        return value

    return get


def _default_argument(node: nodes.Filter) -> tuple[Any] | None:
    """``(value,)`` for ``| default(CONSTANT)`` (or ``| default``), else None."""
    if node.name not in ("default", "d") or node.kwargs or node.dyn_args or node.dyn_kwargs:
        return None
    if not node.args:
        return ("",)
    if len(node.args) != 1 or not isinstance(node.args[0], nodes.Const):
        return None  # boolean=True, or a computed default
    return (node.args[0].value,)


def _lookup_path(node: nodes.Node) -> tuple[str, list[str]] | None:
    """``("subscriber", ["first_name"])`` for ``subscriber.first_name``; None otherwise."""
    attributes: list[str] = []
    while isinstance(node, nodes.Getattr):
        attributes.append(node.attr)
        node = node.node
    if not isinstance(node, nodes.Name) or node.ctx != "load":
        return None
    return node.name, attributes[::-1]
