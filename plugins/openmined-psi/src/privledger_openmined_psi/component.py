"""OpenMined's PSI (https://github.com/OpenMined/PSI, the C++ library's Python binding) as a
privledger component, ``openmined-psi``.

Security model: semi-honest, the library's ECDH-PSI over P-256. The requester (the library's
client) blinds its items with its key and sends them; the provider (the server) blinds them again
and sends them back with its own items blinded by its key, as a sorted list (``raw``, exact) or a
Golomb-compressed set (``gcs``, smaller, with false positives at the rate ``fpr`` over the whole
requester set). The requester learns the intersection (and, with ``gcs``, possibly a false
positive); the provider learns the requester's set size and nothing of which items matched.

Messages, over the task's channel: the requester's JSON header ``{"size": n}`` (so that a
provider checks its grant's set-size cap before it answers), then the library's ``Request``; the
provider checks that the request holds exactly ``n`` items and answers with ``ServerSetup`` and
``Response``. The provider is paid for the keys it answered (it does not learn the matches).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import private_set_intersection.python as psi
from pydantic import BaseModel, ConfigDict, Field

from privledger.evm.contracts import FailureReason
from privledger.node.components import Component, SpecRefused
from privledger.node.runners.base import Run, RunOutput, TaskRefused

MAX_ITEMS = 1 << 22
STRUCTURES = {"raw": psi.DataStructure.RAW, "gcs": psi.DataStructure.GCS}


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data_structure: Literal["raw", "gcs"] = Field(
        default="raw", description="raw: exact; gcs: smaller, false positives at fpr"
    )
    fpr: float = Field(default=1e-9, gt=0, le=1e-3, description="gcs: false-positive rate")


class OpenMinedPsi(Component):
    name = "openmined.psi"
    version = "0.1.0+psi" + psi.__version__
    protocols = ("openmined-psi",)
    kind = "psi"
    parties = (2, 2)
    roles = ("requester", "provider")
    outputs = ("requester",)
    output_schema = "a key of the intersection"
    enforces = ("max_requester_set",)
    security = __doc__ or ""
    params_model = Params

    def check(self, spec: Any) -> None:
        super().check(spec)
        if not all(item.key_only for item in spec.inputs):
            raise SpecRefused(f"{self.name} joins key columns and returns no value column")

    def run(self, task: Run) -> RunOutput:
        params: Params = self.params(task.spec)
        channel = task.capped_channel(len(task.keys))
        if task.is_requester:
            return self._client(task, channel)
        return self._server(task, channel, params)

    def _client(self, task: Run, channel: Any) -> RunOutput:
        items = sorted({key.decode() for key in task.keys})
        client = psi.client.CreateWithNewKey(True)
        channel.send(json.dumps({"size": len(items)}).encode())
        channel.send(client.CreateRequest(items).SerializeToString())
        setup = psi.ServerSetup()
        setup.ParseFromString(bytes(channel.recv(task.timeout)))
        response = psi.Response()
        response.ParseFromString(bytes(channel.recv(task.timeout)))
        matched = sorted(items[index] for index in client.GetIntersection(setup, response))
        task.check_release(len(matched), "matched rows")
        return matched, len(matched)

    def _server(self, task: Run, channel: Any, params: Params) -> RunOutput:
        header = json.loads(bytes(channel.recv(task.timeout)))  # the cap is checked on it
        size = header["size"]
        request = psi.Request()
        request.ParseFromString(bytes(channel.recv(task.timeout)))
        if len(request.encrypted_elements) != size or size > MAX_ITEMS:
            raise TaskRefused(
                FailureReason.PROTOCOL_ERROR,
                f"the request holds {len(request.encrypted_elements)} items, announced {size}",
            )
        items = sorted({key.decode() for key in task.keys})
        server = psi.server.CreateWithNewKey(True)
        structure = STRUCTURES[params.data_structure]
        setup = server.CreateSetupMessage(params.fpr, max(size, 1), items, structure)
        channel.send(setup.SerializeToString())
        channel.send(server.ProcessRequest(request).SerializeToString())
        return None, size


OPENMINED_PSI = OpenMinedPsi()
