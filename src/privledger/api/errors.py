"""Every error leaves the API as ``{"error": {"code", "message"}}`` with a fitting status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from web3.exceptions import MismatchedABI, Web3Exception, Web3ValidationError

from privledger.evm.errors import ChainError, ChainRevert, InsufficientFunds
from privledger.node.keystore import KeystoreError
from privledger.node.logbook import LogMismatch
from privledger.wire.errors import ErrorResponse as ErrorResponse

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error meant for the caller."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# Documented on every operation (FastAPI would otherwise describe 422 as {"detail": [...]},
# which this API never answers).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "Bad input: a malformed value, an unknown reference, a spec the terms refuse"),
        (401, "No token, or one this node does not know"),
        (403, "The caller's on-chain role does not allow it"),
        (404, "No such id"),
        (409, "Conflicts with the ledger's state or the node's log"),
        (413, "The request body is too large"),
        (422, "The request does not match this schema"),
        (
            429,
            "Too many at once: calls without credentials (or whose credentials fail) beyond the "
            "client address's rate, or frames for a full mailbox; retry later",
        ),
        (503, "The chain is unavailable, or the node is too busy (with Retry-After)"),
    )
}
# a refusal by rate says when to retry
ERROR_RESPONSES[429]["headers"] = {
    "Retry-After": {
        "description": "seconds until the client's address may call again",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def envelope_body(status: int, code: str, message: str) -> dict[str, Any]:
    """An error as the interop API answers it: a BFIA envelope whose ``code`` is the status."""
    return {"code": status, "msg": message, "data": {"error": code}}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        return JSONResponse(error_body("invalid_request", problems), status_code=422)

    # a value of the request the chain's ABI cannot encode (MismatchedABI: an id of 2^256 or
    # more, say) that a route passed on without bounding it: the caller's input, logged all
    # the same since the route should have refused it
    @app.exception_handler(MismatchedABI)
    @app.exception_handler(Web3ValidationError)
    async def _unencodable(_: Request, exc: Web3Exception) -> JSONResponse:
        logger.warning("a value the chain cannot encode: %s", exc)
        return JSONResponse(error_body("invalid_request", f"not a valid value: {exc}"), 400)

    @app.exception_handler(ChainRevert)
    async def _revert(_: Request, exc: ChainRevert) -> JSONResponse:
        # the ledger refused: an unknown id is a 404, anything else a conflict with its rules
        status = 404 if "Unknown" in exc.error else 409
        return JSONResponse(error_body(exc.error, str(exc)), status_code=status)

    @app.exception_handler(InsufficientFunds)
    async def _unfunded(_: Request, exc: InsufficientFunds) -> JSONResponse:
        # the caller's account (a task's fee above its balance, say), not the chain's health
        return JSONResponse(error_body("insufficient_funds", str(exc)), status_code=402)

    @app.exception_handler(ChainError)
    async def _chain(_: Request, exc: ChainError) -> JSONResponse:
        logger.warning("chain error: %s", exc)
        return JSONResponse(error_body("chain_unavailable", str(exc)), status_code=503)

    @app.exception_handler(LogMismatch)
    async def _log_mismatch(_: Request, exc: LogMismatch) -> JSONResponse:
        logger.warning("log does not match its anchors: %s", exc)
        return JSONResponse(error_body("log_mismatch", str(exc)), status_code=409)

    @app.exception_handler(KeystoreError)
    async def _keystore(_: Request, exc: KeystoreError) -> JSONResponse:
        return JSONResponse(error_body("not_custodial", str(exc)), status_code=403)

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, exc: DataError) -> JSONResponse:
        # the store refused a value of the request (PostgreSQL: a NUL in text, a number out of
        # its column's range) that validation let through: the caller's input, not our fault
        logger.warning("a value the store cannot hold: %s", exc.orig)
        message = "a value of the request cannot be stored (e.g. text with a NUL character)"
        return JSONResponse(error_body("unstorable_value", message), status_code=400)

    @app.exception_handler(PoolTimeout)
    async def _busy(_: Request, exc: PoolTimeout) -> JSONResponse:
        # no database connection came free in time: a load to wait out, not a failure
        logger.warning("no database connection free: %s", exc)
        message = "the node is busy: no database connection came free in time; retry shortly"
        return JSONResponse(error_body("busy", message), 503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error", exc_info=exc)
        return JSONResponse(error_body("internal", "internal error; see the node log"), 500)


def parse_hex32(text: str, what: str) -> bytes:
    """A 0x-prefixed 32-byte hex id from a path, or a 400 naming what was expected."""
    raw = text[2:] if text.startswith("0x") else text
    try:
        value = bytes.fromhex(raw)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise ApiError(400, "invalid_id", f"a {what} is 32 bytes of 0x-prefixed hex")
    return value
