"""Loading YAML, JSON text, bytes, files and dicts: positions, all problems at once, non-JSON values."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from taskrunner.errors import ValidationFailed
from taskrunner.pack import ManifestError, load_pack
from taskrunner.pack.errors import render_problem
from taskrunner.pack.source import parse_source, parse_text

VALID = """\
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: loader, version: 1.0.0}
spec:
  sandbox: {mode: sealed, egressAllowlist: []}
  steps:
    - id: a
      run: {uses: noop, with: {when: 2024-01-02}}
"""

MANY_PROBLEMS = """\
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: Many, version: 1.0.0}
spec:
  sandbox: {mode: sealed}
  steps:
    - id: a
      run: {uses: noop}
      gate.policy: {policy: p}
    - id: b
      when: "inputs.[["
      run: {uses: noop}
    - id: b
      gate.approval: {approval: nobody}
    - id: 9bad
      run: {uses: noop, with: {x: "{{ secrets.ghost }}"}}
"""


def refused(source: Any, **kw: Any) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_pack(source, **kw)
    return info.value


def test_yaml_positions_are_one_based_line_and_column() -> None:
    parsed = parse_text(VALID, "v.yaml")
    assert parsed.positions.get("spec.steps[0].id") == (7, 11)
    assert parsed.positions.get("spec.steps[0].run.with.when") == (8, 38)
    assert parsed.positions.get("metadata.name") == (3, 18)
    assert parsed.positions.locate("spec.steps[0].run.missing.deeper") == (8, 12)


def test_yaml_dates_stay_strings() -> None:
    loaded = load_pack(VALID)
    assert loaded.document["spec"]["steps"][0]["run"]["with"]["when"] == "2024-01-02"


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    error = refused(MANY_PROBLEMS, source_name="many.yaml")
    expected = [
        (3, "metadata.name", "'Many' does not match"),
        (5, "spec.sandbox.egressAllowlist", "required field is missing"),
        (7, "spec.steps[0]", "a step needs exactly one kind key, found 2 (run and gate.policy)"),
        (9, "spec.steps[0].gate.policy.policy", 'names "p", which spec.policies does not define'),
        (11, "spec.steps[1].when", "expression 'inputs.[[' does not parse"),
        (13, "spec.steps[2].id", 'step id "b" is used twice (first at spec.steps[1].id)'),
        (14, "spec.steps[2].gate.approval.approval", 'names "nobody", which spec.approvals does not define'),
        (15, "spec.steps[3].id", "'9bad' does not match"),
        (16, "spec.steps[3].run.with.x", "secrets.ghost is not declared"),
    ]
    assert [(p["line"], p["path"]) for p in error.problem_list] == [
        (line, path) for line, path, _ in expected
    ]
    for problem, (_, _, message) in zip(error.problem_list, expected, strict=True):
        assert problem["message"].startswith(message)
    assert all(p["file"] == "many.yaml" and p["column"] and p["hint"] for p in error.problem_list)
    assert error.problems == [dict(p) for p in error.problem_list]
    assert isinstance(error, ValidationFailed)
    assert error.code == "InvalidPack"


def test_str_renders_file_line_column_path_message_and_hint() -> None:
    error = refused(MANY_PROBLEMS, source_name="many.yaml")
    lines = str(error).splitlines()
    assert len(lines) == len(error.problem_list)
    assert lines[4].startswith("many.yaml:11:13: spec.steps[1].when: expression 'inputs.[[' does not parse")
    assert lines[4].endswith(")")
    assert "(hint: " in lines[4]
    assert "9 problems" in error.message


def test_problems_without_a_position_render_without_one() -> None:
    problem = {"file": "<manifest>", "line": None, "column": None, "path": "spec", "message": "m", "hint": ""}
    assert render_problem(problem) == "<manifest>: spec: m"  # type: ignore[arg-type]


def test_json_text_keeps_json_numbers_and_positions() -> None:
    document = {
        "apiVersion": "stellaops.io/pack.v1",
        "kind": "TaskPack",
        "metadata": {"name": "json", "version": "1.0.0"},
        "spec": {
            "sandbox": {"mode": "sealed", "egressAllowlist": []},
            "steps": [{"id": "a", "run": {"uses": "noop", "with": {"n": 1e5}}}],
        },
    }
    loaded = load_pack(json.dumps(document, indent=2))
    assert loaded.document["spec"]["steps"][0]["run"]["with"]["n"] == 100000.0
    document["spec"]["steps"][0]["id"] = "1x"
    error = refused(json.dumps(document, indent=2), source_name="p.json")
    assert error.problem_list[0]["path"] == "spec.steps[0].id"
    assert error.problem_list[0]["line"] == 15


def test_a_parsed_dict_is_accepted_without_positions() -> None:
    error = refused({"apiVersion": "stellaops.io/pack.v1", "kind": "TaskPack"})
    assert {p["path"] for p in error.problem_list} == {"metadata", "spec"}
    assert all(p["line"] is None and p["file"] == "<manifest>" for p in error.problem_list)


def test_the_loaded_document_is_a_private_copy() -> None:
    document = parse_text(VALID, "v").document
    loaded = load_pack(document)
    document["spec"]["steps"][0]["id"] = "changed"
    assert loaded.document["spec"]["steps"][0]["id"] == "a"


def test_tuples_in_a_dict_source_become_lists() -> None:
    document = parse_text(VALID, "v").document
    document["metadata"]["tags"] = ("x", "y")
    assert load_pack(document).document["metadata"]["tags"] == ["x", "y"]


def test_non_json_values_in_a_dict_source_are_all_reported() -> None:
    document = parse_text(VALID, "v").document
    document["spec"]["steps"][0]["run"]["with"] = {
        "nan": float("nan"),
        "big": 2**60,
        "when": dt.date(2024, 1, 2),
        "set": {1},
        1: "int key",
    }
    paths = {p["path"]: p["message"] for p in refused(document).problem_list}
    base = "spec.steps[0].run.with"
    assert set(paths) == {f"{base}.nan", f"{base}.big", f"{base}.when", f"{base}.set", f"{base}.1"}
    assert "safe range" in paths[f"{base}.big"]
    assert "not a string" in paths[f"{base}.1"]


@pytest.mark.parametrize(
    ("text", "path", "fragment", "line"),
    [
        ("a: 1\na: 2\n", "a", "duplicate key 'a'", 2),
        ("a: {b: 1, b: 2}\n", "a.b", "duplicate key 'b'", 1),
        ("k: {1: x}\n", "k.1", "is not a string", 1),
        ("x: !!binary aGk=\n", "x", "bytes value is not JSON", 1),
        ("x: .inf\n", "x", "not a JSON number", 1),
        ("x: 123456789012345678901\n", "x", "safe range", 1),
        ("a: [1, 2\n", "", "YAML error", 2),
        ("x: !custom 1\n", "", "YAML error", 1),
        ("- &a [*a]\n", "", "recursive alias", 1),
        ("", "", "the document is empty", 1),
        ('{"a": [1,\n 2', "", "JSON syntax error", 2),
        ('{"a": 1, "a": 2}', "a", "duplicate key 'a'", 1),
        ('{"a": NaN}', "", "NaN is not a JSON number", 1),
    ],
)
def test_syntax_and_data_problems_are_reported_with_positions(
    text: str, path: str, fragment: str, line: int
) -> None:
    with pytest.raises(ManifestError) as info:
        parse_text(text, "t.yaml")
    problem = info.value.problem_list[0]
    assert (problem["path"], problem["line"]) == (path, line)
    assert fragment in problem["message"]


def test_yaml_merge_keys_and_anchors_are_supported() -> None:
    parsed = parse_text("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n", "m.yaml")
    assert parsed.document == {"base": {"x": 1, "y": 2}, "d": {"x": 1, "y": 3}}


def test_a_top_level_list_is_not_a_manifest() -> None:
    assert refused("- 1\n- 2\n").problem_list[0]["message"] == "a pack manifest must be a mapping"


def test_files_and_bytes_are_read_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert load_pack(path).file == str(path)
    assert load_pack(VALID.encode()).manifest.metadata.name == "loader"
    bad = refused(b"\xff\xfe not utf-8", source_name="b.yaml")
    assert "not UTF-8" in bad.problem_list[0]["message"]
    missing = refused(tmp_path / "absent.yaml")
    assert "cannot read the file" in missing.problem_list[0]["message"]


def test_parse_source_returns_plain_data_for_any_source() -> None:
    assert parse_source({"a": [1]}).document == {"a": [1]}
    assert parse_source("a: [1]\n").document == {"a": [1]}
    assert parse_source(b'{"a": [1]}').document == {"a": [1]}


def test_yaml_flow_style_that_is_not_json_is_read_as_yaml() -> None:
    assert parse_text("{a: 1, b: [x, 2024-01-02]}", "f.yaml").document == {"a": 1, "b": ["x", "2024-01-02"]}


def test_the_pure_python_yaml_loader_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from taskrunner.pack import source

    class PureLoader(yaml.SafeLoader):
        yaml_implicit_resolvers = source._Loader.yaml_implicit_resolvers

    expected = parse_text(VALID + "  x: &a {k: [1, 2.5, true, null]}\n  y: *a\n", "p.yaml")
    monkeypatch.setattr(source, "_Loader", PureLoader)
    actual = parse_text(VALID + "  x: &a {k: [1, 2.5, true, null]}\n  y: *a\n", "p.yaml")
    assert actual.document == expected.document
    assert actual.positions.table == expected.positions.table
    with pytest.raises(ManifestError, match="duplicate key"):
        parse_text("a: 1\na: 2\n", "d.yaml")
