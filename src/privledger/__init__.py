"""privledger: privacy computing authorised, recorded and settled on an EVM ledger."""

__version__ = "0.1.0"
