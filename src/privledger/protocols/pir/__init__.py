"""Private information retrieval: LWE-based SimplePIR (:mod:`.simplepir`) and keyword PIR with
OPRF-derived slots and a k-anonymous bucketed mode (:mod:`.keyword`)."""
