"""An organisation's data owner (or anyone holding its token) registering files that are not its
data: the node's own key, system files, another organisation's data on the same host. Only a file
inside the organisation's import directory registers by path, and a refusal says nothing about
what lies outside it; anything else reaches the node as an upload (issue 14, items 1 and 2)."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from privledger.sdk import ApiError, NodeClient
from tests.e2e.conftest import Running

pytestmark = pytest.mark.security


def _post(running: Running, org: str, path: str) -> httpx.Response:
    body = {"path": path, "name": f"x-{secrets.token_hex(3)}", "level": 2, "unitPrice": 0}
    with running.client(org, "data_owner") as owner:
        return owner.post("/datasets", json=body)


def _refusal(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "not_importable", error
    return error


def test_files_outside_the_import_directory_are_refused_alike(running: Running) -> None:
    home = running.settings.var_dir / "nodes" / "telecom"
    inside = running.import_dir("telecom")
    absent = f"/etc/no-such-file-{secrets.token_hex(4)}"
    attempts = [
        "/etc/group",  # any file the node process can read
        str(home / "keystore" / "node-key.pem"),  # the node's own key
        str(running.import_dir("bank-a") / "bank-a.csv"),  # another organisation's data
        str(running.data_dir / "bank-a.csv"),
        str(inside / ".." / "keystore" / "node-key.pem"),  # out of the directory by ..
        "../keystore/node-key.pem",
        str(inside),  # the directory itself
        absent,
        "a\x00b.csv",
        "x" * 4000,
    ]
    errors = [_refusal(_post(running, "telecom", path)) for path in attempts]
    # one answer whether the outside path exists or not: nothing is learnt about the host
    assert all(error == errors[0] for error in errors), errors
    assert (home / "keystore" / "node-key.pem").is_file() and not Path(absent).exists()


def test_symlinks_out_of_the_import_directory_are_refused(running: Running) -> None:
    inside = running.import_dir("telecom")
    tag = secrets.token_hex(3)
    key = running.settings.var_dir / "nodes" / "telecom" / "keystore" / "node-key.pem"
    os.symlink(key, inside / f"key-{tag}.csv")
    os.symlink(running.import_dir("bank-a"), inside / f"partner-{tag}")
    own = inside / f"own-{tag}.csv"
    own.write_text("phone\n+1\n")
    os.symlink(own, inside / f"alias-{tag}.csv")  # even one that stays inside
    attempts = [f"key-{tag}.csv", f"partner-{tag}/bank-a.csv", f"alias-{tag}.csv"]
    errors = [_refusal(_post(running, "telecom", path)) for path in attempts]
    assert errors == [_refusal(_post(running, "telecom", "/etc/group"))] * len(attempts)
    registered = _post(running, "telecom", f"own-{tag}.csv")  # the file itself registers
    assert registered.status_code == 201, registered.text
    assert registered.json()["columns"] == ["phone"]


def test_an_absolute_path_inside_the_import_directory_registers(running: Running) -> None:
    path = running.import_dir("bank-b") / f"inside-{secrets.token_hex(3)}.csv"
    path.write_text("phone,segment\n+1,retail\n+2,sme\n")
    response = _post(running, "bank-b", str(path))
    assert response.status_code == 201, response.text
    assert response.json()["rowCount"] == 2


def test_a_file_anywhere_on_the_client_uploads(running: Running, tmp_path: Path) -> None:
    """The data owner's own machine: no path on the node, the file streamed to it."""
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffphone,amount\r\n+1,10\r\n+2,20\r\n".encode())
    node = running.nodes["bank-b"]
    with NodeClient(node.url, node.tokens["data_owner"]) as owner:
        dataset = owner.register_file(path, "uploaded", level=2, unit_price=5)
        assert dataset.columns == ["phone", "amount"] and dataset.row_count == 2
        listed = {d.dataset_id: d for d in owner.datasets()}
        assert listed[dataset.dataset_id].unit_price == 5
        table = tmp_path / "table.parquet"
        pq.write_table(pa.table({"phone": ["+1", "+2", "+3"], "amount": [1, 2, 3]}), table)
        parquet = owner.register_file(table, "columnar", level=2, unit_price=0)
        assert parquet.columns == ["phone", "amount"] and parquet.row_count == 3
        with pytest.raises(ApiError) as refused:
            owner.register_file(tmp_path / "excel.csv", "bad name!", level=2, unit_price=0)
        assert refused.value.status == 422
        path.write_text("phone,amount\n+1\n")
        with pytest.raises(ApiError) as ragged:
            owner.register_file(path, "ragged", level=2, unit_price=0)
        assert (ragged.value.status, ragged.value.code) == (400, "invalid_dataset")


def test_uploads_need_a_data_owner_and_a_size_under_the_cap(running: Running) -> None:
    node = running.nodes["bank-b"]
    url = f"{node.url}/api/v1/datasets/upload"
    params = {"name": "x", "level": 2, "unitPrice": 0}
    anonymous = httpx.post(url, params=params, content=b"phone\n+1\n")
    assert anonymous.status_code == 401
    with running.client("bank-b", "operator") as operator:
        assert (
            operator.post("/datasets/upload", params=params, content=b"a\n1\n").status_code == 403
        )
    # a declared length over the cap is answered at once, before any of the body is awaited
    host, port = node.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(
            f"POST /api/v1/datasets/upload?name=x&level=2&unitPrice=0 HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: Bearer {node.tokens['data_owner']}\r\n"
            f"Content-Type: text/csv\r\nContent-Length: {1 << 40}\r\n\r\n".encode()
        )
        status_line = connection.recv(65536).split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"413", status_line
