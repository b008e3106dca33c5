"""Pure two-party and multi-party protocols: no chain, database or HTTP.

Every protocol talks to its peers only through a :class:`privledger.protocols.channel.Channel`,
which is the only module of ours that code under ``protocols`` may import. Each protocol module
states its security model (semi-honest unless it says otherwise) and exactly what each side learns.
"""
