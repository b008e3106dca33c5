"""OpenMined's PSI as a privledger computation component (:mod:`.component`)."""
