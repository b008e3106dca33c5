"""Organisation node: keys, transport, worker."""
