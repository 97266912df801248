"""The bounded sandbox under templates and ``when``: ``*`` and ``+`` cannot build huge values."""

from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError

from dripline._sandbox import MAX_CONCATENATION, MAX_POWER_DIGITS, MAX_REPETITION
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


@pytest.mark.parametrize(
    "source",
    [
        "{{ (('x' * 1000).replace('x', 'xy' * 1000)) }}",
        "{{ ('x' * 1000)|replace('x', 'y' * 2000) }}",
        "{{ (['x' * 9999] * 9999)|join }}",
        "{{ '-'.join(['x' * 9000] * 200) }}",
        "{{ ([(['x' * 100] * 100)|join] * 101)|join }}",
    ],
)
def test_a_replace_or_join_past_the_concatenation_limit_is_refused(source):
    """probe-18c MEDIUM B: each piece under the * bound, the replace/join multiplies."""
    with pytest.raises(SecurityError, match=f"the sandbox allows {MAX_CONCATENATION:,}"):
        TEXT.from_string(source).render(subscriber="a")


@pytest.mark.parametrize(
    "source", ["{{ (((10**64)**64)**64)**64 > 1 }}", "{{ 2 ** 100000 }}", "{{ (-7) ** 6000 }}"]
)
def test_a_power_past_the_digit_limit_is_refused_and_never_folded(source):
    """probe-18c MEDIUM G: nested literal powers, each at most 64, made a number of 16.7
    million digits while the template compiled (no budget could stop it). Not folded
    now, and refused at render time before the number is built."""
    template = TEXT.from_string(source)  # compiling alone would have taken minutes
    with pytest.raises(SecurityError, match=f"the sandbox allows {MAX_POWER_DIGITS:,}"):
        template.render()


def test_ordinary_replace_join_and_powers_are_unchanged():
    rendered = TEXT.from_string(
        "{{ 'a-b'.replace('-', '+') }}|{{ 'aXa'|replace('X', 'yy') }}|{{ ['a', 'b']|join(',') }}|"
        "{{ ', '.join(['a', 'b']) }}|{{ 2 ** 10 }}|{{ 10 ** 64 > 1 }}|{{ 2 ** -1 }}|{{ 1.5 ** 2 }}|"
        "{{ range(3)|join('.') }}"
    ).render()
    assert rendered == "a+b|ayya|a,b|a, b|1024|True|0.5|2.25|0.1.2"
