"""The structural ASL validator (validate_definition): each kind of problem is found and located."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from taskrunner.asl import compile_plan, validate_definition
from test_asl_scenarios import SCENARIOS


def task(**fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", **fields}


def machine(states: dict[str, Any], start: str = "A") -> dict[str, Any]:
    return {"StartAt": start, "States": states}


def only(problems: list[str], fragment: str) -> str:
    matching = [problem for problem in problems if fragment in problem]
    assert len(matching) == 1, problems
    return matching[0]


def test_valid_definition_has_no_problems() -> None:
    assert validate_definition(machine({"A": task(Next="B"), "B": {"Type": "Succeed"}})) == []


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_compiled_definitions_are_valid(scenario: str) -> None:
    assert validate_definition(compile_plan(SCENARIOS[scenario]()).definition) == []


def test_dangling_next_is_reported_with_its_state() -> None:
    problems = validate_definition(machine({"A": task(Next="Missing"), "B": {"Type": "Succeed"}}))

    assert (
        only(problems, "'Missing'") == "States.A: transition to 'Missing', which is not a state of this scope"
    )


def test_dangling_catch_and_default_targets_are_reported() -> None:
    definition = machine(
        {
            "A": task(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Nowhere"}], Next="C"),
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "NumericEquals": 1, "Next": "D"}],
                "Default": "E",
            },
            "D": {"Type": "Succeed"},
        }
    )
    problems = validate_definition(definition)

    assert only(problems, "'Nowhere'").startswith("States.A:")
    assert only(problems, "'E'").startswith("States.C:")


def test_unreachable_state_is_reported() -> None:
    problems = validate_definition(machine({"A": {"Type": "Succeed"}, "Orphan": task(End=True)}))

    assert problems == ["States.Orphan: is unreachable (no transition leads to it)"]


def test_missing_terminal_state_is_reported() -> None:
    problems = validate_definition(machine({"A": task(Next="B"), "B": task(Next="A")}))

    assert (
        only(problems, "terminal") == "the state machine: has no terminal state (End: true, Succeed or Fail)"
    )


def test_loop_without_exit_is_reported_even_with_a_terminal_elsewhere() -> None:
    definition = machine(
        {
            "A": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.go", "BooleanEquals": True, "Next": "Loop"}],
                "Default": "Done",
            },
            "Loop": {"Type": "Pass", "Next": "Again"},
            "Again": {"Type": "Pass", "Next": "Loop"},
            "Done": {"Type": "Succeed"},
        }
    )
    problems = validate_definition(definition)

    assert sorted(problems) == [
        "States.Again: can never reach a terminal state (endless loop)",
        "States.Loop: can never reach a terminal state (endless loop)",
    ]


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"States": {"A": {"Type": "Succeed"}}}, "the state machine: has no StartAt"),
        (
            machine({"A": {"Type": "Succeed"}}, start="B"),
            "the state machine: StartAt 'B' names no state of this scope",
        ),
        ({"StartAt": "A", "States": {}}, "the state machine: has no States"),
    ],
)
def test_start_problems(definition: dict[str, Any], expected: str) -> None:
    assert expected in validate_definition(definition)


def test_choice_without_default_is_reported() -> None:
    definition = machine(
        {
            "A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericEquals": 1, "Next": "B"}]},
            "B": {"Type": "Succeed"},
        }
    )

    assert "States.NoChoiceMatched" in only(validate_definition(definition), "Default")


def test_jsonata_is_reported() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "A",
        "States": {"A": task(Arguments={"x": "{% $states.input %}"}, Assign={"y": 1}, End=True)},
    }
    problems = validate_definition(definition)

    assert any("'QueryLanguage'" in problem for problem in problems)
    assert only(problems, "'Arguments'").startswith("States.A:")
    assert only(problems, "'Assign'").startswith("States.A:")


def test_branch_states_cannot_reach_outer_states() -> None:
    definition = machine(
        {
            "A": {
                "Type": "Parallel",
                "Branches": [
                    machine(
                        {"B": task(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Out"}], End=True)}, "B"
                    )
                ],
                "Next": "Out",
            },
            "Out": {"Type": "Succeed"},
        }
    )

    assert validate_definition(definition) == [
        "States.A.Branches[0].States.B: transition to 'Out', which is not a state of this scope"
    ]


def test_problems_inside_map_processors_are_located() -> None:
    definition = machine(
        {
            "A": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED"},
                    "StartAt": "X",
                    "States": {"X": task(Next="Y")},
                },
                "End": True,
            }
        }
    )
    problems = validate_definition(definition)

    assert (
        only(problems, "ExecutionType")
        == "States.A: a DISTRIBUTED Map needs ExecutionType STANDARD or EXPRESS"
    )
    assert only(problems, "'Y'").startswith("States.A.ItemProcessor.States.X:")
    assert (
        only(problems, "terminal")
        == "States.A.ItemProcessor: has no terminal state (End: true, Succeed or Fail)"
    )


def test_state_names_must_be_unique_across_scopes_and_well_formed() -> None:
    definition = machine(
        {
            "A": {"Type": "Parallel", "Branches": [machine({"A": {"Type": "Succeed"}})], "Next": "bad name"},
            "bad name": {"Type": "Succeed"},
            "x" * 81: {"Type": "Pass", "End": True},
        }
    )
    problems = validate_definition(definition)

    assert any(
        problem.startswith("States.A.Branches[0].States.A: state name already used") for problem in problems
    )
    assert any(problem.startswith("States.bad name: state names cannot contain") for problem in problems)
    assert any("1-80 characters" in problem for problem in problems)


@pytest.mark.parametrize(
    ("state", "fragment"),
    [
        (task(Next="B", End=True), "exactly one of Next or End"),
        (task(), "exactly one of Next or End"),
        ({"Type": "Succeed", "Next": "B"}, "cannot have Next or End"),
        ({"Type": "Mystery", "End": True}, "unknown Type"),
        ({"Type": "Task", "End": True}, "needs a Resource"),
        (task(End=True, TimeoutSeconds=0), "TimeoutSeconds must be a whole number"),
        (task(End=True, TimeoutSeconds=10, HeartbeatSeconds=10), "HeartbeatSeconds must be smaller"),
        (task(End=True, Retry=[{"ErrorEquals": ["X"], "IntervalSeconds": 0}]), "IntervalSeconds"),
        (task(End=True, Retry=[{"ErrorEquals": ["X"], "BackoffRate": 0.5}]), "BackoffRate"),
        (task(End=True, Retry=[{"ErrorEquals": []}]), "non-empty ErrorEquals"),
        (
            task(End=True, Retry=[{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]),
            "States.ALL must be the only error of the last entry",
        ),
        (task(End=True, Catch=[{"ErrorEquals": ["States.ALL"]}]), "a catcher needs a Next"),
        (task(End=True, ResultPath="result"), "ResultPath must be a path"),
        (task(End=True, Parameters={"x.$": "nope"}), "needs a path or an intrinsic function"),
        ({"Type": "Pass", "End": True, "Retry": []}, "cannot have Retry or Catch"),
        ({"Type": "Wait", "End": True}, "Wait needs one of"),
        ({"Type": "Parallel", "Branches": [], "End": True}, "non-empty Branches"),
        ({"Type": "Map", "End": True}, "needs an ItemProcessor"),
        (
            {
                "Type": "Map",
                "End": True,
                "MaxConcurrency": -1,
                "ItemProcessor": machine({"A": {"Type": "Succeed"}}),
            },
            "MaxConcurrency",
        ),
        ({"Type": "Choice", "Choices": [], "Default": "B"}, "non-empty Choices"),
        (
            {
                "Type": "Choice",
                "Choices": [{"Variable": "x", "NumericEquals": 1, "Next": "B"}],
                "Default": "B",
            },
            "Variable",
        ),
    ],
)
def test_state_level_problems(state: dict[str, Any], fragment: str) -> None:
    definition = machine({"A": state, "B": {"Type": "Succeed"}})

    assert any(fragment in problem for problem in validate_definition(definition))


def test_validator_does_not_modify_the_definition() -> None:
    definition = compile_plan(SCENARIOS["airgap-import"]()).definition
    before = copy.deepcopy(definition)

    validate_definition(definition)

    assert definition == before
