"""EVM side of privledger: compile, launch, deploy, transact, index, and prove on the ledger."""
