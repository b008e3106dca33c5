"""Compiled contract artifacts: ABI, bytecode and the hashes that tie them to their sources."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


class ArtifactError(RuntimeError):
    """An artifact is missing or unreadable; run ``privledger compile``."""


@dataclass(frozen=True)
class Artifact:
    contract_name: str
    source_name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    source_hash: str
    compiler_version: str

    @property
    def abi_hash(self) -> str:
        """sha256 of the canonical ABI JSON: identifies the interface a deployment speaks."""
        canonical = json.dumps(self.abi, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.contract_name}.json"
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))

    @classmethod
    def read(cls, path: Path) -> Artifact:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ArtifactError(f"cannot read artifact {path}: {exc}") from exc


def load_artifacts(directory: Path) -> dict[str, Artifact]:
    """Every artifact in ``directory`` by contract name."""
    if not directory.is_dir():
        raise ArtifactError(f"no artifacts in {directory}: run `privledger compile`")
    return {path.stem: Artifact.read(path) for path in sorted(directory.glob("*.json"))}
