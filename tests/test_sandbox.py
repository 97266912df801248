"""The bounded sandbox under templates and ``when``: ``*`` and ``+`` cannot build huge values."""

from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError

from dripline._sandbox import MAX_CONCATENATION, MAX_REPETITION
from dripline.templating import make_environments

TEXT = make_environments(None).text


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'ab' * 5001 }}",
        "{{ 5001 * 'ab' }}",
        "{{ [0] * 10001 }}",
        "{{ (subscriber ~ 'x') * 10**9 }}",
        "{{ ('x',) * 10**12 }}",
    ],
)
def test_a_repetition_over_the_limit_is_refused_before_it_is_built(source):
    with pytest.raises(SecurityError, match="the sandbox allows 10,000"):
        TEXT.from_string(source).render(subscriber="a")


def test_a_doubling_loop_is_stopped_at_the_concatenation_limit():
    # `~` and `{% set %}` in a loop cannot assign outward; a namespace can, and doubles.
    template = TEXT.from_string(
        "{% set ns = namespace(s='x') %}{% for _ in range(64) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}"
    )
    with pytest.raises(SecurityError, match=f"allows {MAX_CONCATENATION:,}"):
        template.render()


def test_ordinary_arithmetic_and_small_repetitions_are_unchanged():
    rendered = TEXT.from_string(
        "{{ '-' * 40 }}|{{ 3 * 4 + 1 }}|{{ 2.5 * 2 }}|{{ [1] + [2] }}|{{ 'a' + 'b' }}|"
        "{{ 10**60 * 10**60 > 1 }}|{{ ('x' * " + str(MAX_REPETITION) + ") | length }}"
    ).render()
    assert rendered == f"{'-' * 40}|13|5.0|[1, 2]|ab|True|{MAX_REPETITION}"
