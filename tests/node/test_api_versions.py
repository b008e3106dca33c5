"""Every version in the node API's changelog is published: the current one by the application,
each earlier one from its kept document -- a release that bumps the version must keep the
document of the one it replaces."""

from __future__ import annotations

import json

from privledger.api.app import API_VERSION
from privledger.api.routes.interop import CHANGELOG as INTEROP_CHANGELOG
from privledger.api.routes.versions import CHANGELOG, SNAPSHOTS


def test_every_earlier_version_has_its_document() -> None:
    assert list(CHANGELOG)[-1] == API_VERSION
    for version in list(CHANGELOG)[:-1]:
        kept = json.loads((SNAPSHOTS / f"node-{version}.json").read_text())
        assert kept["info"]["version"] == version
        assert kept["openapi"].startswith("3.")
    for version in list(INTEROP_CHANGELOG)[:-1]:
        assert (SNAPSHOTS / f"interop-{version}.json").is_file()


def test_the_documents_are_only_the_changelog_s() -> None:
    kept = {path.name for path in SNAPSHOTS.glob("*.json")}
    wanted = {f"node-{v}.json" for v in list(CHANGELOG)[:-1]}
    wanted |= {f"interop-{v}.json" for v in list(INTEROP_CHANGELOG)[:-1]}
    assert kept == wanted
