"""The rules file's shape, checked strictly by pydantic (unknown keys are errors)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class PersonIn(_Strict):
    jira: str = Field(min_length=1)
    name: str | None = None
    level: str
    team: str | None = None
    reports_to: str | None = None
    competences: list[str] = []


class TeamIn(_Strict):
    lead: str | None = None
    components: list[str] = []
    projects: list[str] = []


class WaitingIn(_Strict):
    statuses: list[str] = []
    approver_field: str | None = None


class MatchIn(_Strict):
    issue_types: list[str] = []
    labels: list[str] = []
    components: list[str] = []
    projects: list[str] = []
    priorities: list[str] = []
    fields: dict[str, Any] = {}


class DecisionIn(_Strict):
    name: str = Field(min_length=1)
    match: MatchIn = MatchIn()
    decided_at: str
    purpose: str | None = None
    require: str | None = None


class FlagIn(_Strict):
    tolerance: StrictInt = Field(default=0, ge=0)
    remind_after: str | None = None


class CommentIn(_Strict):
    template: str | None = None
    intent_template: str | None = None


class RulesIn(_Strict):
    version: StrictInt
    levels: list[str] = Field(min_length=1)
    people: dict[str, PersonIn] = {}
    teams: dict[str, TeamIn] = {}
    waiting_for_approval: WaitingIn
    decisions: list[DecisionIn] = []
    flag: FlagIn = FlagIn()
    comment: CommentIn = CommentIn()
    dry_run: StrictBool = False
    outcome_window: str | None = None


def known_keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


#: For did-you-mean on unknown keys: the model that owns each path's keys.
def model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    models: dict[str, type[BaseModel]] = {
        "people": PersonIn,
        "teams": TeamIn,
        "waiting_for_approval": WaitingIn,
        "flag": FlagIn,
        "comment": CommentIn,
    }
    if len(path) == 0:
        return RulesIn
    head = path[0]
    if head in ("people", "teams") and len(path) == 2:
        return models[head]
    if head in ("waiting_for_approval", "flag", "comment") and len(path) == 1:
        return models[head]
    if head == "decisions" and len(path) == 2:
        return DecisionIn
    if head == "decisions" and len(path) == 3 and path[2] == "match":
        return MatchIn
    return None
