"""Every protocol's example task body (the API schema's examples, ``privledger task template``)
is one the API accepts: each is read as the API reads a submitted body, its inputs' owners
resolved, into its protocol's spec (issue 23, item 1)."""

from __future__ import annotations

from typing import get_args

import pytest

from privledger.api.examples import TASK_EXAMPLES, THEIRS, THIRD, YOURS
from privledger.api.routes.tasks import spec_inputs, task_spec
from privledger.api.schemas import TaskIn
from privledger.node.spec import TaskProtocol

REQUESTER = 1
OWNERS = {YOURS: REQUESTER, THEIRS: 2, THIRD: 3}


def test_every_protocol_has_an_example_in_the_schema() -> None:
    assert list(TASK_EXAMPLES) == list(get_args(TaskProtocol))
    examples = TaskIn.model_json_schema()["examples"]
    assert [example["protocol"] for example in examples] == list(TASK_EXAMPLES)


@pytest.mark.parametrize("protocol", list(TASK_EXAMPLES))
def test_the_example_is_a_task_of_its_protocol(protocol: str) -> None:
    body = TaskIn.model_validate(TASK_EXAMPLES[protocol].body)
    inputs = spec_inputs(body, OWNERS.__getitem__)
    spec = task_spec(body, REQUESTER, inputs)
    assert (spec.protocol, spec.kind) == (protocol, body.kind)
