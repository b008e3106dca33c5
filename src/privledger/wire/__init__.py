"""The REST API's response bodies as the node sends them and the SDK reads them.

The node's routes declare these models as their ``response_model`` and the SDK
(:mod:`privledger.sdk`) parses every answer into them, so both sides hold one definition. They
import pydantic and the standard library only -- nothing of the node (web3, numpy, SQLModel,
FastAPI) -- so the slim ``privledger-sdk`` distribution ships them beside the client
(``docs/reference/sdk.md``). Where the node's own vocabulary is a ``Literal`` defined beside its
task specs (a protocol's name, an output, a column's use), a body says ``str``: the request
bodies, which stay in :mod:`privledger.api.schemas`, are where those values are checked.
"""
