"""Joining the consortium through a node's onboarding portal: the applicant applies and tracks
its application; the consortium admin lists, approves and rejects.

Approval is non-custodial by default: the command fetches the exact transactions from the
portal, fills in the admin's nonces, gas and the chain id itself, signs them here with
PRIVLEDGER_ADMIN_KEY (on the local development chain, anvil's first account) and posts them
for the portal to check and relay. ``--custodial`` lets the portal's node sign with the admin's
key from its keystore instead.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from privledger.cli.choices import ApplicationStatus, RequestedRole
from privledger.cli.common import (
    NODE_URL,
    HomeOption,
    JsonOption,
    OrgOption,
    RpcOption,
    TokenOption,
    UrlOption,
    node_settings,
)
from privledger.cli.output import console, fail, show

onboarding_app = typer.Typer(
    help="Join the consortium: apply and track (no token); review (consortium admin token).",
    no_args_is_help=True,
)

PortalOption = Annotated[
    str,
    typer.Option(
        envvar="PRIVLEDGER_PORTAL_URL",
        help="A node hosting the onboarding portal (in the demo, the regulator's).",
    ),
]
ApplicationArgument = Annotated[str, typer.Argument(help="The application's id.")]
PREFIX = "/api/v1/onboarding/applications"
GAS_MARGIN = (
    1.5  # over eth_estimateGas: the estimate is taken before the transaction ahead is mined
)
APPLICATION_COLUMNS = ("applicationId", "orgName", "status", "submittedAt", "requestedRoles")


def _call(method: str, url: str, *, token: str = "", secret: str = "", body: Any = None) -> Any:
    """One request to the portal: its JSON answer, or the API's error as the command's."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if secret:
        headers["X-Tracking-Secret"] = secret
    try:
        response = httpx.request(method, url, headers=headers, json=body, timeout=60)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc}", code="unreachable")
    if response.is_error:
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", response.text[:200]
        fail(f"{response.status_code} {code}: {message}", code=code)
    return response.json()


@onboarding_app.command("apply")
def onboarding_apply(
    org: OrgOption,
    home: HomeOption,
    contact_name: Annotated[str, typer.Option(help="Who the consortium admin may contact.")],
    contact_email: Annotated[str, typer.Option(help="Their e-mail address.")],
    portal: PortalOption,
    role: Annotated[
        list[RequestedRole] | None,
        typer.Option(help="A role besides org admin for the node account (repeatable)."),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="The URL peers will reach the node at (default PRIVLEDGER_PUBLIC_URL, else "
            "http://HOST:PORT of its settings)."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Apply to join with the node made by `privledger node init` (its account, X25519 key and
    endpoint, as `node identity` prints them); prints the application id and the tracking secret,
    shown once."""
    from privledger.cli.node import identity

    body = {
        **identity(node_settings(org, home, public_url=public_url)),
        "contactName": contact_name,
        "contactEmail": contact_email,
        "requestedRoles": [chosen.value for chosen in role or []],
    }
    created = _call("POST", portal.rstrip("/") + PREFIX, body=body)
    show(created, title="application")
    console.print(
        "Keep the tracking secret: `privledger onboarding status "
        f"{created['applicationId']} --secret <it> --portal {portal}` follows the application; "
        "once approved, `privledger node run` joins.",
        markup=False,
    )


@onboarding_app.command("status")
def onboarding_status(
    application_id: ApplicationArgument,
    secret: Annotated[str, typer.Option(help="The tracking secret `onboarding apply` printed.")],
    portal: PortalOption,
    json_output: JsonOption = False,
) -> None:
    """An application's status: submitted, under_review, approved (with the org id), rejected
    (with the reason) or expired (left open longer than the portal keeps applications)."""
    show(_call("GET", f"{portal.rstrip('/')}{PREFIX}/{application_id}", secret=secret))


@onboarding_app.command("list")
def onboarding_list(
    status: Annotated[ApplicationStatus | None, typer.Option(help="Only these.")] = None,
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """The applications on your node's portal (consortium admin token)."""
    query = f"?status={status.value}" if status else ""
    applications = _call("GET", f"{url.rstrip('/')}{PREFIX}{query}", token=token)
    show(applications, title="applications", columns=APPLICATION_COLUMNS)


@onboarding_app.command("reject")
def onboarding_reject(
    application_id: ApplicationArgument,
    reason: Annotated[str, typer.Option(help="Why; the applicant sees it.")],
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """Reject an application (consortium admin token)."""
    where = f"{url.rstrip('/')}{PREFIX}/{application_id}/reject"
    show(_call("POST", where, token=token, body={"reason": reason}))


@onboarding_app.command("approve")
def onboarding_approve(
    application_id: ApplicationArgument,
    custodial: Annotated[
        bool,
        typer.Option(
            help="Let the portal's node sign with the consortium admin's key from its keystore, "
            "instead of signing here with PRIVLEDGER_ADMIN_KEY."
        ),
    ] = False,
    rpc_url: RpcOption = None,
    url: UrlOption = NODE_URL,
    token: TokenOption = "",
    json_output: JsonOption = False,
) -> None:
    """Approve an application (consortium admin token): the organisation is registered on chain
    with its node, and granted the roles it asked for."""
    where = f"{url.rstrip('/')}{PREFIX}/{application_id}"
    signed = (
        None if custodial else _signed(_call("GET", f"{where}/transactions", token=token), rpc_url)
    )
    approved = _call("POST", f"{where}/approve", token=token, body={"signedTransactions": signed})
    show(approved, title="application")


def _signed(template: dict[str, Any], rpc_url: str | None) -> list[str]:
    """The template's transactions signed by the consortium admin, in order, with its next
    nonces, the chain's gas price and gas estimated from the chain."""
    from privledger.cli.chain import admin_account, connected

    w3 = connected(rpc_url)
    if w3.eth.chain_id != template["chainId"]:
        fail(
            f"the chain at the RPC URL is {w3.eth.chain_id}, the portal's {template['chainId']}",
            code="wrong_chain",
        )
    admin = admin_account(template["chainId"])
    nonce = w3.eth.get_transaction_count(admin.address, "pending")
    gas_price = w3.eth.gas_price
    signed: list[str] = []
    gas = 0
    for offset, unsigned in enumerate(template["transactions"]):
        call = {"from": admin.address, "to": unsigned["to"], "data": unsigned["data"]}
        try:
            gas = int(w3.eth.estimate_gas(call) * GAS_MARGIN)  # type: ignore[arg-type]
        except Exception as exc:  # web3 raises several types for a call that would revert
            if not gas:  # the first transaction would revert as it stands
                fail(f"{unsigned['function']} would revert: {exc}", code="reverted")
            # a later one can only run once the earlier is mined: it gets the earlier's gas
        transaction = {
            **call,
            "gas": gas,
            "gasPrice": gas_price,
            "nonce": nonce + offset,
            "chainId": template["chainId"],
            "value": 0,
        }
        del transaction["from"]
        raw = admin.sign_transaction(transaction).raw_transaction
        signed.append("0x" + bytes(raw).hex())
    return signed
