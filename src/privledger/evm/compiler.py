"""Compile the Solidity sources in ``contracts/`` with py-solc-x's standard-JSON interface.

A native ``solc`` 0.8.x on the PATH is used when present; otherwise the npm solc-js pinned in
``chain/package.json`` through the shim ``chain/bin/solc``. Artifacts land in ``build/contracts``
and are rebuilt only when a source, the compiler, the settings or the pinned libraries change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import solcx

from privledger.config import Settings
from privledger.evm.artifacts import Artifact, ArtifactError, load_artifacts

logger = logging.getLogger(__name__)

EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200
CONTRACT_OUTPUTS = ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]
CONTRACTS_PREFIX = "contracts/"  # our sources, by their standard-JSON names


class CompileError(RuntimeError):
    """The compiler rejected the sources or could not be run."""


def find_solc(settings: Settings) -> Path:
    """A native solc 0.8.x if one is installed, else the solc-js shim."""
    native = shutil.which("solc")
    if native is not None:
        try:
            version = solcx.wrapper.get_solc_version(native)
        except (OSError, subprocess.CalledProcessError, solcx.exceptions.SolcError):
            version = None
        if version is not None and version.major == 0 and version.minor == 8:
            return Path(native)
    shim = settings.chain_dir / "bin" / "solc"
    if not (settings.chain_dir / "node_modules" / "solc" / "solc.js").is_file():
        raise CompileError("solc-js is not installed: run `npm ci` in chain/ (or `make bootstrap`)")
    return shim


def _sources(settings: Settings) -> dict[str, str]:
    root = settings.project_root
    files = sorted(settings.contracts_dir.rglob("*.sol"))
    if not files:
        raise CompileError(f"no Solidity sources under {settings.contracts_dir}")
    return {path.relative_to(root).as_posix(): path.read_text() for path in files}


def _standard_input(sources: dict[str, str]) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "remappings": ["@openzeppelin/=chain/node_modules/@openzeppelin/"],
            "outputSelection": {"*": {"*": CONTRACT_OUTPUTS}},
        },
    }


def _cache_key(standard_input: dict[str, Any], compiler_version: str, lockfile: Path) -> str:
    digest = hashlib.sha256()
    digest.update(compiler_version.encode())
    digest.update(json.dumps(standard_input, sort_keys=True).encode())
    if lockfile.is_file():  # pins the OpenZeppelin version the imports resolve to
        digest.update(lockfile.read_bytes())
    return digest.hexdigest()


def split_warnings(diagnostics: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Compiler warnings about our own sources (or none in particular), and those about library
    sources (OpenZeppelin under node_modules): a newcomer reads the latter as errors in our
    build, and they are not ours to fix, so they are kept out of the log's warning level."""
    ours: list[str] = []
    libraries: list[str] = []
    for diagnostic in diagnostics:
        if diagnostic["severity"] == "info":
            continue
        source = diagnostic.get("sourceLocation", {}).get("file", "")
        library = bool(source) and not source.startswith(CONTRACTS_PREFIX)
        (libraries if library else ours).append(diagnostic["formattedMessage"])
    return ours, libraries


def compile_contracts(settings: Settings, *, force: bool = False) -> dict[str, Artifact]:
    """Compile every contract (or reuse the cache) and return the artifacts by contract name."""
    solc = find_solc(settings)
    compiler_version = str(solcx.wrapper.get_solc_version(solc, with_commit_hash=True))
    standard_input = _standard_input(_sources(settings))
    key = _cache_key(standard_input, compiler_version, settings.chain_dir / "package-lock.json")
    out_dir = settings.build_dir / "contracts"
    key_file = out_dir / ".cache-key"
    if not force and key_file.is_file() and key_file.read_text() == key:
        try:
            logger.info("contracts unchanged, using cached artifacts in %s", out_dir)
            return load_artifacts(out_dir)
        except ArtifactError:
            logger.warning("artifact cache unreadable, recompiling")

    logger.info("compiling %d sources with %s", len(standard_input["sources"]), solc)
    try:
        output = solcx.compile_standard(
            standard_input, base_path=settings.project_root, solc_binary=solc
        )
    except solcx.exceptions.SolcError as exc:
        raise CompileError(str(exc)) from exc
    ours, libraries = split_warnings(output.get("errors", []))
    for warning in ours:
        logger.warning("solc: %s", warning)
    if libraries:
        logger.debug("solc: %d warnings about library sources not shown", len(libraries))

    artifacts: dict[str, Artifact] = {}
    for source_name, contracts in output["contracts"].items():
        if not source_name.startswith(CONTRACTS_PREFIX):
            continue  # library sources (OpenZeppelin) are not deployed on their own
        for contract_name, data in contracts.items():
            bytecode = data["evm"]["bytecode"]["object"]
            if not bytecode:
                continue  # interfaces and abstract contracts
            artifacts[contract_name] = Artifact(
                contract_name=contract_name,
                source_name=source_name,
                abi=data["abi"],
                bytecode="0x" + bytecode,
                deployed_bytecode="0x" + data["evm"]["deployedBytecode"]["object"],
                source_hash=hashlib.sha256(
                    standard_input["sources"][source_name]["content"].encode()
                ).hexdigest(),
                compiler_version=compiler_version,
            )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    for artifact in artifacts.values():
        artifact.write(out_dir)
    key_file.write_text(key)
    return artifacts
