"""Structural validation of an ASL definition (JSONPath query language).

Checks what Step Functions (or its local interpreter) would reject or mis-run, and names where:
missing ``StartAt``; unknown types and missing fields per type; ``Next``/``End`` misuse; transitions
(``Next``, ``Default``, ``Choices[].Next``, ``Catch[].Next``) to states that do not exist in the same
scope (a Parallel branch or a Map item processor is its own scope); unreachable states; scopes without
a terminal state and states that can never reach one; Choice states without ``Default``; retriers and
catchers (``States.ALL`` last and alone, whole-second intervals); timeouts; state names (length,
characters, uniqueness across the whole definition); paths and payload templates; and any JSONata
construct (``QueryLanguage``, ``Assign`` and the JSONata-only fields ``Arguments``, ``Output``, ``Items``,
``Condition``; a ``{% %}`` string is only an expression under JSONata, so it needs one of those).
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

_TYPES = {"Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"}
_TERMINAL_TYPES = {"Succeed", "Fail"}
_NO_TRANSITION_TYPES = {"Choice", "Succeed", "Fail"}
_FALLIBLE_TYPES = {"Task", "Parallel", "Map"}
_JSONATA_FIELDS = ("QueryLanguage", "Assign", "Arguments", "Output", "Items", "Condition")
_PATH_FIELDS = ("InputPath", "OutputPath", "ResultPath")
_TEMPLATE_FIELDS = ("Parameters", "ItemSelector", "ResultSelector")
_NAME_FORBIDDEN = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]")
_MAX_NAME = 80
_MAX_TIMEOUT = 99_999_999


def validate_definition(definition: dict[str, Any]) -> list[str]:
    """Every problem found in ``definition``; an empty list when it is valid."""
    if not isinstance(definition, dict):
        return ["the definition is not a JSON object"]
    checker = _Checker()
    for name in ("QueryLanguage", "Assign"):
        if name in definition:
            checker.problem("the state machine", f"uses {name!r}; only JSONPath is supported (no JSONata)")
    if "TimeoutSeconds" in definition:
        checker.positive_int("the state machine", definition, "TimeoutSeconds")
    checker.scope(definition, "States")
    return checker.problems


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.seen_names: dict[str, str] = {}

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    # -- scopes --------------------------------------------------------------------------------------

    def scope(self, machine: Any, where: str) -> None:
        """One state machine, Parallel branch or Map item processor."""
        label = "the state machine" if where == "States" else where.removesuffix(".States")
        if not isinstance(machine, dict):
            self.problem(label, "is not a JSON object with StartAt and States")
            return
        states = machine.get("States")
        if not isinstance(states, dict) or not states:
            self.problem(label, "has no States")
            return
        start = machine.get("StartAt")
        if not isinstance(start, str):
            self.problem(label, "has no StartAt")
        elif start not in states:
            self.problem(label, f"StartAt {start!r} names no state of this scope")
        edges: dict[str, list[str]] = {}
        for name, state in states.items():
            at = f"{where}.{name}"
            self.name(name, at)
            if not isinstance(state, dict):
                self.problem(at, "is not a JSON object")
                edges[name] = []
                continue
            edges[name] = self.state(name, state, at, states)
        self.graph(label, where, start if isinstance(start, str) else None, states, edges)

    def graph(
        self, label: str, where: str, start: str | None, states: dict[str, Any], edges: dict[str, list[str]]
    ) -> None:
        """Reachability from StartAt, and every reachable state able to reach a terminal state."""
        reachable = _walk([start] if start in states else [], edges)
        for name in states:
            if name not in reachable:
                self.problem(f"{where}.{name}", "is unreachable (no transition leads to it)")
        terminals = [name for name, state in states.items() if _is_terminal(state)]
        if not terminals:
            self.problem(label, "has no terminal state (End: true, Succeed or Fail)")
            return
        reverse: dict[str, list[str]] = {name: [] for name in states}
        for name, targets in edges.items():
            for target in targets:
                if target in reverse:
                    reverse[target].append(name)
        finishing = _walk(terminals, reverse)
        for name in states:
            if name in reachable and name not in finishing:
                self.problem(f"{where}.{name}", "can never reach a terminal state (endless loop)")

    # -- states --------------------------------------------------------------------------------------

    def state(self, name: str, state: dict[str, Any], at: str, states: dict[str, Any]) -> list[str]:
        """Check one state; its transition targets."""
        kind = state.get("Type")
        if kind not in _TYPES:
            self.problem(at, f"has unknown Type {kind!r}; use one of {', '.join(sorted(_TYPES))}")
            return []
        self.jsonata(state, at)
        targets = self.transitions(kind, state, at)
        for path_field in _PATH_FIELDS:
            if path_field in state:
                self.path(state[path_field], at, path_field, nullable=True)
        for template_field in _TEMPLATE_FIELDS:
            if template_field in state:
                self.template(state[template_field], f"{at}.{template_field}")
        if kind == "Task":
            self.task(state, at)
        elif kind == "Choice":
            targets += self.choice(state, at)
        elif kind == "Wait" and not any(
            key in state for key in ("Seconds", "Timestamp", "SecondsPath", "TimestampPath")
        ):
            self.problem(at, "Wait needs one of Seconds, Timestamp, SecondsPath or TimestampPath")
        elif kind == "Parallel":
            branches = state.get("Branches")
            if not isinstance(branches, list) or not branches:
                self.problem(at, "Parallel needs a non-empty Branches list")
            else:
                for position, branch in enumerate(branches):
                    self.scope(branch, f"{at}.Branches[{position}].States")
        elif kind == "Map":
            self.map(state, at)
        if kind in _FALLIBLE_TYPES:
            self.retriers(state.get("Retry"), at)
            targets += self.catchers(state.get("Catch"), at)
        elif "Retry" in state or "Catch" in state:
            self.problem(at, f"{kind} states cannot have Retry or Catch")
        for target in targets:
            if target not in states:
                self.problem(at, f"transition to {target!r}, which is not a state of this scope")
        return targets

    def transitions(self, kind: str, state: dict[str, Any], at: str) -> list[str]:
        has_next, has_end = "Next" in state, "End" in state
        if kind in _NO_TRANSITION_TYPES:
            if has_next or has_end:
                self.problem(at, f"{kind} states cannot have Next or End")
            return []
        if has_end and state["End"] is not True:
            self.problem(at, "End must be true when present")
        if has_next == has_end:
            self.problem(at, "needs exactly one of Next or End: true")
        if has_next:
            if isinstance(state["Next"], str):
                return [state["Next"]]
            self.problem(at, "Next must be a state name")
        return []

    def task(self, state: dict[str, Any], at: str) -> None:
        if not isinstance(state.get("Resource"), str) or not state["Resource"]:
            self.problem(at, "Task needs a Resource")
        for field in ("TimeoutSeconds", "HeartbeatSeconds"):
            if field in state:
                self.positive_int(at, state, field)
        timeout, heartbeat = state.get("TimeoutSeconds"), state.get("HeartbeatSeconds")
        if isinstance(timeout, int) and isinstance(heartbeat, int) and heartbeat >= timeout:
            self.problem(at, "HeartbeatSeconds must be smaller than TimeoutSeconds")

    def choice(self, state: dict[str, Any], at: str) -> list[str]:
        targets: list[str] = []
        choices = state.get("Choices")
        if not isinstance(choices, list) or not choices:
            self.problem(at, "Choice needs a non-empty Choices list")
            choices = []
        for position, rule in enumerate(choices):
            where = f"{at}.Choices[{position}]"
            if not isinstance(rule, dict) or not isinstance(rule.get("Next"), str):
                self.problem(where, "a choice rule needs a Next")
                continue
            targets.append(rule["Next"])
            self.rule(rule, where)
        if "Default" in state:
            if isinstance(state["Default"], str):
                targets.append(state["Default"])
            else:
                self.problem(at, "Default must be a state name")
        else:
            self.problem(
                at,
                "Choice has no Default: an input that matches no rule fails the execution with "
                "States.NoChoiceMatched; add a Default",
            )
        return targets

    def rule(self, rule: dict[str, Any], where: str) -> None:
        for combinator in ("And", "Or"):
            if combinator in rule:
                operands = rule[combinator]
                if not isinstance(operands, list) or not operands:
                    self.problem(where, f"{combinator} needs a non-empty list of rules")
                    return
                for position, operand in enumerate(operands):
                    self.rule(operand, f"{where}.{combinator}[{position}]")
                return
        if "Not" in rule:
            if isinstance(rule["Not"], dict):
                self.rule(rule["Not"], f"{where}.Not")
            else:
                self.problem(where, "Not needs a rule")
            return
        variable = rule.get("Variable")
        if not isinstance(variable, str) or not variable.startswith("$"):
            self.problem(where, "a comparison needs a Variable path starting with '$'")

    def map(self, state: dict[str, Any], at: str) -> None:
        processor = state.get("ItemProcessor", state.get("Iterator"))
        if processor is None:
            self.problem(at, "Map needs an ItemProcessor")
            return
        if not isinstance(processor, dict):
            self.problem(at, "ItemProcessor must be a JSON object")
            return
        config = processor.get("ProcessorConfig", {})
        mode = config.get("Mode", "INLINE") if isinstance(config, dict) else None
        if mode not in ("INLINE", "DISTRIBUTED"):
            self.problem(at, "ItemProcessor.ProcessorConfig.Mode must be INLINE or DISTRIBUTED")
        elif mode == "DISTRIBUTED" and config.get("ExecutionType") not in ("STANDARD", "EXPRESS"):
            self.problem(at, "a DISTRIBUTED Map needs ExecutionType STANDARD or EXPRESS")
        if "ItemsPath" in state:
            self.path(state["ItemsPath"], at, "ItemsPath", nullable=False)
        concurrency = state.get("MaxConcurrency", 0)
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 0:
            self.problem(at, "MaxConcurrency must be a whole number >= 0")
        self.scope(processor, f"{at}.ItemProcessor.States")

    # -- error handling ------------------------------------------------------------------------------

    def retriers(self, retriers: Any, at: str) -> None:
        if retriers is None:
            return
        if not isinstance(retriers, list):
            self.problem(at, "Retry must be a list")
            return
        self.error_lists(retriers, at, "Retry")
        for position, retrier in enumerate(retriers):
            if not isinstance(retrier, dict):
                continue
            interval = retrier.get("IntervalSeconds", 1)
            if not _is_int(interval) or interval < 1:
                self.problem(f"{at}.Retry[{position}]", "IntervalSeconds must be a whole number >= 1")
            attempts = retrier.get("MaxAttempts", 3)
            if not _is_int(attempts) or attempts < 0:
                self.problem(f"{at}.Retry[{position}]", "MaxAttempts must be a whole number >= 0")
            rate = retrier.get("BackoffRate", 2.0)
            if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 1:
                self.problem(f"{at}.Retry[{position}]", "BackoffRate must be a number >= 1.0")

    def catchers(self, catchers: Any, at: str) -> list[str]:
        if catchers is None:
            return []
        if not isinstance(catchers, list):
            self.problem(at, "Catch must be a list")
            return []
        self.error_lists(catchers, at, "Catch")
        targets = []
        for position, caught in enumerate(catchers):
            if not isinstance(caught, dict):
                continue
            target = caught.get("Next")
            if isinstance(target, str):
                targets.append(target)
            else:
                self.problem(f"{at}.Catch[{position}]", "a catcher needs a Next")
            result_path = caught.get("ResultPath")
            if result_path is not None and not (isinstance(result_path, str) and result_path.startswith("$")):
                self.problem(f"{at}.Catch[{position}]", "ResultPath must be a path starting with '$' or null")
        return targets

    def error_lists(self, handlers: list[Any], at: str, field: str) -> None:
        """ErrorEquals of retriers or catchers: non-empty, and ``States.ALL`` alone in the last one."""
        last = len(handlers) - 1
        for position, handler in enumerate(handlers):
            errors = handler.get("ErrorEquals") if isinstance(handler, dict) else None
            if not isinstance(errors, list) or not errors or not all(isinstance(e, str) for e in errors):
                self.problem(f"{at}.{field}[{position}]", "needs a non-empty ErrorEquals list of error names")
            elif "States.ALL" in errors and (len(errors) > 1 or position != last):
                self.problem(
                    f"{at}.{field}[{position}]", "States.ALL must be the only error of the last entry"
                )

    # -- values --------------------------------------------------------------------------------------

    def name(self, name: str, at: str) -> None:
        if not 1 <= len(name) <= _MAX_NAME:
            self.problem(at, f"state names must be 1-{_MAX_NAME} characters long")
        if _NAME_FORBIDDEN.search(name):
            self.problem(
                at,
                'state names cannot contain whitespace, brackets, wildcards or " # % \\ ^ | ~ ` $ & , ; : /',
            )
        if name in self.seen_names:
            self.problem(at, f"state name already used at {self.seen_names[name]}; names must be unique")
        else:
            self.seen_names[name] = at

    def path(self, value: Any, at: str, field: str, *, nullable: bool) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, str) or not value.startswith("$"):
            self.problem(at, f"{field} must be a path starting with '$'" + (" or null" if nullable else ""))

    def template(self, value: Any, at: str) -> None:
        """A payload template: ``key.$`` values must be paths or intrinsic functions."""
        pending: list[tuple[Any, str]] = [(value, at)]
        while pending:
            node, where = pending.pop()
            if isinstance(node, dict):
                for key, item in node.items():
                    if key.endswith(".$"):
                        if not isinstance(item, str) or not item.startswith(("$", "States.")):
                            self.problem(
                                f"{where}.{key}", "a '.$' field needs a path or an intrinsic function"
                            )
                    elif isinstance(item, dict | list):
                        pending.append((item, f"{where}.{key}"))
            elif isinstance(node, list):
                pending.extend((item, f"{where}[{position}]") for position, item in enumerate(node))

    def jsonata(self, state: dict[str, Any], at: str) -> None:
        for name in _JSONATA_FIELDS:
            if name in state:
                self.problem(at, f"uses {name!r}; only JSONPath is supported (no JSONata)")

    def positive_int(self, at: str, holder: dict[str, Any], field: str) -> None:
        value = holder[field]
        if not _is_int(value) or not 1 <= value <= _MAX_TIMEOUT:
            self.problem(at, f"{field} must be a whole number between 1 and {_MAX_TIMEOUT}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_terminal(state: Any) -> bool:
    return isinstance(state, dict) and (state.get("Type") in _TERMINAL_TYPES or state.get("End") is True)


def _walk(starts: list[str], edges: dict[str, list[str]]) -> set[str]:
    seen = set(starts)
    queue = deque(starts)
    while queue:
        for target in edges.get(queue.popleft(), ()):
            if target not in seen and target in edges:
                seen.add(target)
                queue.append(target)
    return seen
