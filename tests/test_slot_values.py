"""Slot expressions in plain Python give exactly what the sandboxed Jinja environment gives."""

from __future__ import annotations

from typing import Any

import pytest
from jinja2 import Undefined, UndefinedError
from markupsafe import Markup

from dripline._slot_values import ASK_JINJA, plain_getter
from dripline.templating import make_environments

ENV = make_environments(None).text
CONTEXTS: list[dict[str, Any]] = [
    {"subscriber": {"first_name": "Ana", "email": "a@example.com"}, "unsubscribe_url": "u"},
    {"subscriber": {"email": "a@example.com"}, "unsubscribe_url": "https://x/u/T"},
    {"subscriber": {"first_name": "", "items": "k"}, "unsubscribe_url": ""},
    {"subscriber": {"first_name": Markup("<b>")}, "unsubscribe_url": 5},
    {"subscriber": {"first_name": None, "plan": {"tier": "gold"}}},
    {"subscriber": {"plan": "basic"}, "unsubscribe_url": "u"},
    {},
]
HANDLED = [
    "unsubscribe_url",
    "subscriber.first_name",
    'subscriber.first_name | default("there")',
    "subscriber.first_name|d('x')",
    "subscriber.first_name | default",
    "subscriber.plan.tier",
    "subscriber.plan.tier | default(3)",
]
JINJA_ONLY = [
    "subscriber.first_name | default('x', true)",
    "subscriber.first_name | upper",
    "subscriber['first_name']",
    "subscriber.items",
    "subscriber._secret",
    "subscriber.first_name ~ '!'",
    "subscriber.first_name | default(subscriber.email)",
]


def jinja(source: str, context: dict[str, Any]) -> Any:
    try:
        return ENV.compile_expression(source, undefined_to_none=False)(**context)
    except UndefinedError:
        return UndefinedError


@pytest.mark.parametrize("source", HANDLED)
@pytest.mark.parametrize("index", range(len(CONTEXTS)))
def test_a_handled_expression_agrees_with_jinja_or_asks_it(source: str, index: int):
    context = CONTEXTS[index]
    getter = plain_getter(ENV, source)
    assert getter is not None
    value = getter(context)
    expected = jinja(source, context)
    if value is not ASK_JINJA:  # asking Jinja is always right; an answer must be Jinja's
        assert value == expected and type(value) is type(expected), (value, expected)
    elif isinstance(context.get("subscriber"), dict) and "plan" not in context["subscriber"]:
        # Plain dicts all the way: asked only when Jinja's answer is undefined.
        assert expected is UndefinedError or isinstance(expected, Undefined), expected


def test_plain_lookups_are_answered_without_jinja():
    context = CONTEXTS[1]
    assert plain_getter(ENV, 'subscriber.first_name | default("there")')(context) == "there"
    assert plain_getter(ENV, "unsubscribe_url")(context) == "https://x/u/T"


@pytest.mark.parametrize("source", JINJA_ONLY)
def test_anything_else_is_left_to_jinja(source: str):
    assert plain_getter(ENV, source) is None


def test_a_syntax_error_is_left_to_jinja():
    assert plain_getter(ENV, "subscriber.(") is None
