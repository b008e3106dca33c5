from __future__ import annotations

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from privledger.evm.errors import ErrorDecoder

ABI = [
    {
        "type": "error",
        "name": "GrantExpired",
        "inputs": [{"name": "grantId", "type": "bytes32"}],
    },
    {
        "type": "error",
        "name": "TaskLedgerInvalidStatus",
        "inputs": [
            {"name": "taskId", "type": "uint256"},
            {"name": "status", "type": "uint8"},
        ],
    },
]


def test_custom_error_decoded_with_named_arguments() -> None:
    decoder = ErrorDecoder([ABI])
    data = function_signature_to_4byte_selector("TaskLedgerInvalidStatus(uint256,uint8)") + encode(
        ["uint256", "uint8"], [7, 3]
    )
    revert = decoder.decode("0x" + data.hex(), contract="TaskLedger")
    assert revert.error == "TaskLedgerInvalidStatus"
    assert revert.args_by_name == {"taskId": 7, "status": 3}
    assert str(revert) == "TaskLedger: TaskLedgerInvalidStatus(taskId=7, status=3)"


def test_bytes_arguments_render_as_hex() -> None:
    decoder = ErrorDecoder([ABI])
    grant_id = bytes(range(32))
    data = function_signature_to_4byte_selector("GrantExpired(bytes32)") + grant_id
    assert str(decoder.decode(data)) == f"GrantExpired(grantId=0x{grant_id.hex()})"


def test_string_panic_and_unknown_errors() -> None:
    decoder = ErrorDecoder([ABI])
    error_string = function_signature_to_4byte_selector("Error(string)") + encode(
        ["string"], ["no"]
    )
    assert decoder.decode(error_string).args_by_name == {"message": "no"}
    panic = function_signature_to_4byte_selector("Panic(uint256)") + encode(["uint256"], [0x11])
    assert decoder.decode(panic).args_by_name == {"code": "0x11"}
    unknown = decoder.decode("0xdeadbeef00")
    assert unknown.error == "UnknownError"
    assert decoder.decode(None).error == "Reverted"
