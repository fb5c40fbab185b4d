"""Shared checks for the three state machines.

Each machine is described by the transition table the design brief gives
(transition -> {source state: target state}), a path of transitions from the
initial state to every state, and how to fire each transition through its
service as a permitted actor. The test modules then prove three things: the
model declares exactly that table; every entry works through the service and
leaves an audit entry; every other (state, transition) pair is refused and
changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import models
from django.forms.models import model_to_dict

from records.models import AuditEntry
from records.services.transitions import TransitionRefused

Fire = Callable[[Any, SimpleNamespace], Any]
RETURNS_TO_FAILED_STEP = "<the step that failed>"


@dataclass(frozen=True)
class Machine:
    model: type[models.Model]
    table: dict[str, dict[str, str]]
    paths: dict[str, list[str]]
    create: Callable[[SimpleNamespace], Any]
    fire: dict[str, Fire]

    @property
    def states(self) -> list[str]:
        return list(self.paths)

    def reach(self, state: str, people: SimpleNamespace) -> Any:
        obj = self.create(people)
        for name in self.paths[state]:
            self.fire[name](obj, people)
        obj.refresh_from_db()
        assert obj.state == state, f"path to {state} ended in {obj.state}"
        return obj

    def allowed_pairs(self) -> list[tuple[str, str]]:
        return [(source, name) for name, sources in self.table.items() for source in sources]

    def refused_pairs(self) -> list[tuple[str, str]]:
        allowed = set(self.allowed_pairs())
        return [
            (state, name)
            for state in self.states
            for name in self.table
            if (state, name) not in allowed
        ]


def declared_table(model: type[models.Model]) -> dict[str, dict[str, str]]:
    """The transitions the model really declares, read back from django-fsm."""
    declared: dict[str, dict[str, str]] = {}
    for transition in model.get_all_state_transitions(model()):  # type: ignore[attr-defined]
        target = transition.target
        if not isinstance(target, str):
            target = RETURNS_TO_FAILED_STEP
        declared.setdefault(transition.name, {})[str(transition.source)] = str(target)
    return declared


def snapshot(obj: Any) -> tuple[dict[str, Any], int]:
    fresh = type(obj).objects.get(pk=obj.pk)
    return model_to_dict(fresh) | {"state": fresh.state}, AuditEntry.objects.count()


def assert_refused(machine: Machine, state: str, name: str, people: SimpleNamespace) -> None:
    obj = machine.reach(state, people)
    before = snapshot(obj)
    with pytest.raises(TransitionRefused) as refused:
        machine.fire[name](obj, people)
    message = str(refused.value)
    assert repr(state) in message, message
    assert snapshot(obj) == before
    assert obj.state == state


def assert_allowed(machine: Machine, source: str, name: str, people: SimpleNamespace) -> None:
    obj = machine.reach(source, people)
    expected = machine.table[name][source]
    if expected == RETURNS_TO_FAILED_STEP:
        expected = obj.failed_from
    audit_before = AuditEntry.objects.count()
    machine.fire[name](obj, people)
    obj.refresh_from_db()
    assert obj.state == expected
    entry = AuditEntry.objects.order_by("-sequence").first()
    assert AuditEntry.objects.count() == audit_before + 1
    assert entry is not None
    assert (entry.from_state, entry.to_state) == (source, expected)
    assert entry.object_id == str(obj.pk)
