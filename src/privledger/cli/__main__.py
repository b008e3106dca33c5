"""``python -m privledger.cli``: the ``privledger`` command."""

from privledger.cli import app

app(prog_name="privledger")
