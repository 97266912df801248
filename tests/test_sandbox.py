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


@pytest.mark.parametrize(
    "source",
    [
        "{{ subscriber|center(10**9) }}",
        "{{ subscriber.center(10**9) }}",
        "{{ subscriber.rjust(width=10**9) }}",
        "{{ subscriber.zfill(10**9) }}",
        "{{ subscriber|indent(10**9) }}",
        "{{ '%1000000000s'|format(subscriber) }}",
        "{{ '%1000000000s' % subscriber }}",
        "{{ '%.1000000000f' % 1.0 }}",
        "{{ '%*s' % (10**9, subscriber) }}",
        "{{ '{:>1000000000}'.format(subscriber) }}",
        "{{ '{:>{w}}'.format(subscriber, w=10**9) }}",
        "{{ ('\t' * 100).expandtabs(10**8) }}",
    ],
)
def test_a_width_over_the_limit_is_refused_before_the_text_is_padded(source):
    """The other one-call ways to build a huge text (probe-18b's addendum, left by the
    first fix): a width given to a str method, a filter, or a % / str.format format."""
    with pytest.raises(SecurityError, match=f"the sandbox allows {MAX_REPETITION:,}"):
        TEXT.from_string(source).render(subscriber="a")


def test_ordinary_widths_and_formats_are_unchanged():
    rendered = TEXT.from_string(
        "{{ x|center(6) }}|{{ x.rjust(4) }}|{{ '%5s'|format(x) }}|{{ '%-*s' % (4, x) }}|"
        "{{ '{:>4}'.format(x) }}|{{ '{:,}'.format(1234567) }}|{{ 7 % 3 }}|{{ '%.2f' % 2.5 }}|"
        "{{ 'a\nb'|indent(2) }}"
    ).render(x="ab")
    assert rendered == "  ab  |  ab|   ab|ab  |  ab|1,234,567|1|2.50|a\n  b"
