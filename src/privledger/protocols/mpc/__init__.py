"""Secret-sharing engine: additive shares over Z_2^64 for N parties (semi-honest, trusted dealer).

- :mod:`.sharing`: fixed-point encoding, the party mesh, the dealer, Beaver multiplication,
  truncation, bit-to-arithmetic conversion.
- :mod:`.compare`: secure comparison (sign bit via edaBits) and equality (packed zero test).
- :mod:`.stats`: joint count, sum, mean, variance and histogram with group-size thresholds.
- :mod:`.lending`: the multi-lending check (total, or total > limit) across banks.

Each module's docstring states its security model and leakage.
"""

from privledger.protocols.mpc.dealer import Dealer, LocalMesh, local_mesh
from privledger.protocols.mpc.ring import DEFAULT_FRAC_BITS
from privledger.protocols.mpc.sharing import MpcError, Party, PartyDropout, PeerSilent

__all__ = [
    "DEFAULT_FRAC_BITS",
    "Dealer",
    "LocalMesh",
    "MpcError",
    "Party",
    "PartyDropout",
    "PeerSilent",
    "local_mesh",
]
