"""The command line's choices mirror the definitions they stand for (privledger.cli.choices keeps
copies so that `privledger --help` need not import the node, the chain facades or the SDK)."""

from __future__ import annotations

import inspect
from typing import get_args, get_type_hints

from privledger import defaults
from privledger.api.routes import onboarding
from privledger.cli import choices
from privledger.config import NodeSettings, Settings
from privledger.demo import SCENARIOS
from privledger.evm.contracts import FailureReason, Kind, Role, TaskStatus
from privledger.node import spec
from privledger.sdk import bodies


def values(enum: type[choices.StrEnum]) -> list[str]:
    return [member.value for member in enum]


def test_task_choices_are_the_specs() -> None:
    assert values(choices.TaskKind) == list(get_args(spec.TaskKind))
    assert values(choices.PsiProtocol) == list(get_args(spec.PsiProtocol))
    assert values(choices.PsiOutput) == list(get_args(spec.PsiOutput))
    assert values(choices.TaskProtocol) == list(get_args(spec.TaskProtocol))
    assert values(choices.StatsOp) == list(bodies.STATS_OPS)
    mode = get_type_hints(bodies.pir_task)["mode"]
    assert values(choices.PirMode) == list(get_args(mode))
    assert inspect.signature(bodies.pir_task).parameters["mode"].default == choices.PirMode.PIR
    assert tuple(values(choices.Scenario)) == SCENARIOS


def test_role_and_status_names_are_the_chains() -> None:
    assert {role.value: bit for role, bit in choices.ROLE_BITS.items()} == {
        role.name.lower(): int(role) for role in Role if role.name
    }
    assert values(choices.ChainRole) == [role.name.lower() for role in Role if role.name]
    assert values(choices.TokenRole) == [*values(choices.ChainRole), onboarding.CONSORTIUM_ADMIN]
    assert values(choices.RequestedRole) == list(get_args(onboarding.RoleName))
    status = onboarding.ApplicationStatus.model_fields["status"].annotation
    assert values(choices.ApplicationStatus) == list(get_args(status))
    assert tuple(status.name.lower() for status in TaskStatus) == choices.TASK_STATUSES
    assert choices.FAILURE_REASONS[1:] == tuple(reason.name.lower() for reason in FailureReason)
    assert [reason.value for reason in FailureReason] == list(range(1, len(FailureReason) + 1))
    assert {kind.value: bit for kind, bit in choices.KIND_BITS.items()} == {
        kind.name.lower(): int(kind) for kind in Kind if kind.name
    }


def test_defaults_are_written_once() -> None:
    node = NodeSettings.model_fields
    assert (node["host"].default, node["port"].default) == (defaults.HOST, defaults.NODE_PORT)
    assert node["rpc_url"].default == Settings.model_fields["rpc_url"].default == defaults.RPC_URL
    assert Settings.model_fields["chain_port"].default == defaults.CHAIN_PORT
