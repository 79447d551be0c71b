"""Templating: typed values, interpolation, roots, errors, caching, escaping and plan-time resolution."""

from __future__ import annotations

import pytest
from taskrunner.pack.expressions import (
    ExpressionError,
    compile_expression,
    condition_expression,
    escape,
    evaluate,
    parse_template,
    render,
    resolve_static,
    roots_of,
    truthy,
)

CONTEXT = {
    "inputs": {
        "name": "web",
        "count": 3,
        "flag": False,
        "tags": ["a", "b"],
        "cfg": {"x": 1},
        "nothing": None,
    },
    "steps": {"scan": {"outputs": {"findings": [{"severity": "low"}, {"severity": "critical"}]}}},
    "item": {"host": "h1"},
    "index": 2,
    "run": {"id": "r-1"},
    "secrets": {"token": "s3cr3t"},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.count }}", 3),
        ("{{inputs.flag}}", False),
        ("{{ inputs.tags }}", ["a", "b"]),
        ("{{ inputs.cfg }}", {"x": 1}),
        ("{{ inputs.nothing }}", None),
        ("{{ inputs.missing }}", None),
        ("{{ index }}", 2),
        ("{{ item.host }}", "h1"),
        ("{{ length(inputs.tags) }}", 2),
        ("  {{ inputs.count }}", "  3"),
    ],
)
def test_a_single_expression_yields_the_typed_value(template: str, expected: object) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("hello {{ inputs.name }}", "hello web"),
        ("n={{ inputs.count }}", "n=3"),
        ("{{ inputs.tags }}!", '["a","b"]!'),
        ("cfg {{ inputs.cfg }} flag {{ inputs.flag }}", 'cfg {"x":1} flag false'),
        ("missing {{ inputs.missing }}", "missing null"),
        ("{{ inputs.name }}{{ index }}", "web2"),
        ("no templates at all", "no templates at all"),
    ],
)
def test_other_strings_interpolate_text_with_compact_json(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


def test_render_walks_lists_and_dict_values_but_not_keys() -> None:
    value = {"{{ inputs.name }}": ["{{ inputs.count }}", {"deep": "x-{{ run.id }}"}], "n": 5}
    assert render(value, CONTEXT) == {"{{ inputs.name }}": [3, {"deep": "x-r-1"}], "n": 5}


def test_the_executor_render_resolves_secrets() -> None:
    assert render({"auth": "Bearer {{ secrets.token }}"}, CONTEXT) == {"auth": "Bearer s3cr3t"}


@pytest.mark.parametrize(
    ("source", "references"),
    [
        ("inputs.name", {("inputs", "name")}),
        ("inputs.tags[0]", {("inputs", "tags")}),
        ("inputs", {("inputs", None)}),
        ("inputs.*", {("inputs", None)}),
        ('steps."scan-all".outputs', {("steps", "scan-all")}),
        ("length(steps.scan.outputs.findings[?severity=='critical']) == `0`", {("steps", "scan")}),
        ("sort_by(inputs.items, &name)[0]", {("inputs", "items")}),
        ("inputs.xs[*].name | [0]", {("inputs", "xs")}),
        ("{a: inputs.a, b: item}", {("inputs", "a"), ("item", None)}),
        ("[index, run.id]", {("index", None), ("run", "id")}),
        ("inputs.a && !(secrets.b) || `true`", {("inputs", "a"), ("secrets", "b")}),
        ("inputs.a | env", {("inputs", "a")}),  # the right of a pipe reads the left's result
        ("`[1, 2]`", set()),
        ("@", {("@", None)}),
    ],
)
def test_references_name_the_roots_read_from_the_context(
    source: str, references: set[tuple[str, str | None]]
) -> None:
    expression = compile_expression(source)
    assert set(expression.references) == references
    assert expression.roots == {root for root, _ in references}


def test_roots_of_collects_the_roots_of_every_template_in_a_value() -> None:
    value = {
        "a": "x {{ inputs.a }}",
        "b": ["{{ steps.s.outputs }}", 3, "plain"],
        "c": {"d": "{{ secrets.t }}"},
    }
    assert roots_of(value) == {"inputs", "steps", "secrets"}
    assert roots_of({"only": "literal"}) == frozenset()


def test_reads_only_tells_input_only_expressions_from_run_time_ones() -> None:
    plan_time = frozenset({"inputs"})
    assert compile_expression("inputs.a == `1`").reads_only(plan_time)
    assert not compile_expression("inputs.a == steps.b.outputs.c").reads_only(plan_time)
    assert not compile_expression("secrets.token").reads_only(plan_time)
    assert parse_template("a {{ inputs.a }} b").roots == {"inputs"}
    assert parse_template("{{ inputs.a }} {{ steps.x.outputs }}").roots == {"inputs", "steps"}


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("inputs.[[[", "does not parse"),
        ("a.b.", "does not parse"),
        ("", "empty expression"),
        ("env.HOME", "unknown root 'env'"),
        ("length(env)", "unknown root 'env'"),
        ("nosuch(inputs.a)", "unknown function nosuch()"),
        ("inputs.a == null", "unknown root 'null'"),
        ("!inputs.flag", "'!' applies to the first name only"),
    ],
)
def test_bad_expressions_are_refused_with_a_hint(source: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(source)
    assert fragment in info.value.message
    assert info.value.hint


def test_bare_null_true_false_get_a_backtick_hint() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression("inputs.a != false")
    assert "`false`" in info.value.hint


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("x {{ inputs.a", "unclosed {{"),
        ("{{ 'abc }}", "unterminated ' quote"),
        ("{{ }}", "empty expression"),
        ("{{ inputs.[ }}", "does not parse"),
    ],
)
def test_bad_templates_are_refused(template: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_template(template)
    assert fragment in info.value.message


def test_closing_braces_inside_literals_do_not_end_the_expression() -> None:
    assert render("{{ '}}' }}", {}) == "}}"
    assert render('a{{ `{"k": {"v": 1}}`.k.v }}b', {}) == "a1b"


def test_compiled_expressions_and_templates_are_cached() -> None:
    assert compile_expression("inputs.cached_probe") is compile_expression("inputs.cached_probe")
    assert parse_template("x {{ inputs.cached_probe }}") is parse_template("x {{ inputs.cached_probe }}")


@pytest.mark.parametrize(
    "value",
    [
        "{{ secrets.token }}",
        "a {{ inputs.name }} b",
        "{{{",
        "}}{{",
        "plain",
        ["{{ x }}", {"k": "{{ y }}"}],
        4,
    ],
)
def test_escaped_values_render_back_to_themselves(value: object) -> None:
    assert render(escape(value), CONTEXT) == value


def test_resolve_static_resolves_whole_strings_that_read_only_available_roots() -> None:
    value = {
        "a": "{{ inputs.count }}",
        "b": "hi {{ inputs.name }}",
        "c": "{{ inputs.name }} and {{ steps.scan.outputs }}",
        "d": "{{ secrets.token }}",
        "e": ["{{ item.host }}", "{{ index }}"],
    }
    resolved = resolve_static(value, CONTEXT, frozenset({"inputs", "item", "index"}))
    assert resolved == {
        "a": 3,
        "b": "hi web",
        "c": "{{ inputs.name }} and {{ steps.scan.outputs }}",
        "d": "{{ secrets.token }}",
        "e": ["h1", 2],
    }


def test_resolved_input_data_is_never_reinterpreted_as_a_template() -> None:
    context = {"inputs": {"evil": "{{ secrets.token }}"}}
    planned = resolve_static(
        {"v": "{{ inputs.evil }}", "t": "x {{ inputs.evil }}"}, context, frozenset({"inputs"})
    )
    at_run_time = render(planned, {**context, "secrets": {"token": "s3cr3t"}})
    assert at_run_time == {"v": "{{ secrets.token }}", "t": "x {{ secrets.token }}"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (0, True),
        ("x", True),
        ([0], True),
    ],
)
def test_truthiness_follows_jmespath(value: object, expected: bool) -> None:
    assert truthy(value) is expected


def test_conditions_may_be_bare_or_one_template() -> None:
    assert condition_expression("inputs.count > `2`").source == "inputs.count > `2`"
    assert condition_expression("{{ inputs.count > `2` }}").source == "inputs.count > `2`"
    assert evaluate("inputs.count > `2`", CONTEXT) is True
    assert evaluate("{{ inputs.flag }}", CONTEXT) is False
    with pytest.raises(ExpressionError, match="must be one expression"):
        condition_expression("{{ inputs.a }} and {{ inputs.b }}")


def test_evaluation_errors_are_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="failed"):
        evaluate("length(inputs.count)", CONTEXT)
