"""200 transactions from one account through the transaction client, sent by 16 threads at once,
against a chain that refuses nonces as Besu's sequenced pool does with its default settings (5
ahead of the sender's mined count: ``besu_rpc``), with a block every 0.2 s: none is lost, and the
client never had a nonce in flight outside the window."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from web3 import Web3

from privledger.config import Settings
from privledger.evm.accounts import dev_account
from privledger.evm.anvil import start_anvil
from privledger.evm.client import ChainClient
from privledger.evm.errors import ErrorDecoder
from tests.deploy.besu_rpc import BESU_DEFAULT_WINDOW, BesuRules, besu_front

TRANSACTIONS = 200
THREADS = 16


def test_a_burst_from_one_account_stays_inside_besus_nonce_window(settings: Settings) -> None:
    options = ("--block-time", "0.2")
    with (
        start_anvil(settings.chain_dir, options=options) as chain,
        besu_front(chain.rpc_url, BesuRules()) as (url, front),
    ):
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
        sender, payee = dev_account(5), dev_account(6).address
        client = ChainClient(w3, sender, ErrorDecoder([]), receipt_timeout_s=60)
        first = w3.eth.get_transaction_count(sender.address, "latest")

        def pay(_: int) -> str:
            receipt = client.transact_data(payee, b"", value=1)
            assert receipt["status"] == 1
            return str(receipt["transactionHash"].hex())

        with ThreadPoolExecutor(THREADS) as pool:
            hashes = list(pool.map(pay, range(TRANSACTIONS)))

        assert len(set(hashes)) == TRANSACTIONS
        assert w3.eth.get_transaction_count(sender.address, "latest") == first + TRANSACTIONS
        seen = front.seen
        assert seen.methods["eth_sendRawTransactionSync"] == 1  # asked once, refused, not used
        assert seen.too_distant > 0, "the burst never reached the window: nothing was tested"
        assert max(seen.ahead) < BESU_DEFAULT_WINDOW  # every accepted nonce inside the window
        assert sum(seen.ahead.values()) == TRANSACTIONS  # each accepted once, none twice
        assert seen.untagged_estimates == 0
