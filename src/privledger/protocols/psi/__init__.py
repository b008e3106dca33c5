"""Private set intersection protocols (two-party ECDH-PSI in :mod:`.ecdh`)."""
