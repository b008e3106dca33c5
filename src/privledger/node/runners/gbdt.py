"""Vertical gradient-boosted trees as a task: ``vertical-gbdt`` (:mod:`.protocols.fl.gbdt`).

The parties align their rows by PSI inside the task, as for vertical-lr (every party learns the
common ids, the requester once every provider checked their count); the requester, the label
holder, then trains with every feature owner over the task's channels. Each party keeps its own
part of the model as its task output: its splits (the thresholds of its own columns), the trees'
shapes, and at the label holder the leaf values, the owner and gain of every split. Each party
commits to its part (sha256 of a fresh salt and the part); the label holder gathers the
commitments and sends the list back, so every party computes the same
:func:`~privledger.node.models.gbdt_model_hash`, which the label holder may register as an asset
(:mod:`privledger.node.models`) and every party checks before joint prediction.

With ``output: model`` the feature owners then reveal their splits and column names to the
label holder, which merges the model and keeps it as LightGBM text in its output (the features
named by their columns, prefixed by the organisation's name where two parties share a name):
the worker lets a data owner's node take part only when its grant's terms list ``model``
(:func:`privledger.node.terms.violation`), so the export happens with the consent of every
party.

Contribution and settlement. The label holder reports every party's share of the total split
gain (``contributions``), a measure only it can take, and every party's number of splits in the
trees kept (``split_counts``). A feature owner reports its own count, ``splits`` (its splits and
all the splits of every tree grown: :class:`~privledger.protocols.fl.gbdt.SplitTally`), and
anchors as its usage units the aligned rows, or -- when its grant's terms price by
``contribution`` -- the aligned rows times its share of the splits, rounded up
(:func:`contribution_units`): a count it makes from its own view, which the requester cannot
lower by a report (docs/grants.md). With two feature owners, each sends the other the hash of
the trees' shapes it was sent: shapes that differ mean the label holder showed them different
trees, and a feature owner that finds so anchors all its aligned rows (``shapes_agree`` false
in its result).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Literal

import numpy as np

from privledger.evm.contracts import FailureReason
from privledger.node.models import gbdt_model_hash
from privledger.node.runners.base import Run, RunOutput, TaskRefused
from privledger.node.runners.builtin import BuiltinComponent
from privledger.node.runners.fl import _aligned_ids, _feature_rows, validation_row
from privledger.node.spec import VerticalGbdtSpec
from privledger.protocols.channel import Channel
from privledger.protocols.fl import gbdt
from privledger.protocols.fl.gbdt import (
    GbdtConfig,
    LabelHolderModel,
    OwnerModel,
    SplitTally,
    export_feature_owner,
    export_label_holder,
    train_feature_owner,
    train_label_holder,
)
from privledger.protocols.fl.horizontal import F64


def run(task: Run) -> RunOutput:
    spec = task.spec
    if not isinstance(spec, VerticalGbdtSpec):
        raise TaskRefused(FailureReason.SPEC_MISMATCH, f"{spec.protocol} is not vertical-gbdt")
    mine = task.mine
    assert mine is not None  # every participant of a vertical-gbdt task holds an input
    if not task.is_requester and spec.gbdt.min_child_samples < task.min_release:
        # a chosen split tells the label holder which of a node's rows fall on each side of
        # this owner's threshold: no side may single out fewer rows than it releases
        raise TaskRefused(
            FailureReason.POLICY_VIOLATION,
            f"min_child_samples {spec.gbdt.min_child_samples} is below this provider's release "
            f"threshold {task.min_release}",
        )
    common = _aligned_ids(task, task.owners, fewest=2)
    names = list(mine.features or ())
    features = _feature_rows(task, common, len(names))
    config = gbdt_config(spec, task.timeout)
    # the validation fifth (chosen from the common ids alike on all sides) decides early stopping
    held_out = np.array([validation_row(key) for key in common], dtype=bool)
    if config.early_stopping_rounds == 0:
        held_out[:] = False
    channels = [task.channels[org] for org in task.owners[1:]] if task.is_requester else []
    tally = SplitTally()
    try:
        if task.is_requester:
            labels = _labels(task, common)
            valid = (features[held_out], labels[held_out]) if held_out.any() else None
            model: LabelHolderModel | OwnerModel = train_label_holder(
                channels,
                features[~held_out],
                labels[~held_out],
                config=config,
                valid=valid,
            )
        else:
            model = train_feature_owner(
                task.channels[spec.requester],
                features[~held_out],
                config=config,
                valid_features=features[held_out] if held_out.any() else None,
                tally=tally,
            )
    except ValueError as exc:  # the data cannot train (one class only, too few rows)
        raise TaskRefused(FailureReason.POLICY_VIOLATION, str(exc)) from exc
    part: dict[str, object] = {
        "protocol": spec.protocol,
        "aligned": len(common),
        "features": names,
        "model": model.to_json(),
    }
    units = len(common)
    if isinstance(model, OwnerModel):
        units, measured = _owner_units(task, spec, tally, len(common))
        part |= measured
    salt = secrets.token_bytes(32)
    commitments = _exchange_commitments(task, spec, _commitment(salt, part["model"]))
    part |= {
        "salt": salt.hex(),
        "commitments": commitments,
        "model_hash": "0x" + gbdt_model_hash(task.task.task_id, spec, commitments).hex(),
    }
    if isinstance(model, LabelHolderModel):
        shares = model.party_importance()
        part["contributions"] = {
            str(org): float(share) for org, share in zip(task.owners, shares, strict=True)
        }
        part["split_counts"] = {
            str(org): count for org, count in zip(task.owners, model.party_splits(), strict=True)
        }
        part["trees"] = len(model.own.shapes)
        if spec.output == "model":
            orgs = [task.node.ledger.orgs.get_org(org).name for org in task.owners]
            merged = export_label_holder(
                channels, model, names=names, parties=orgs, timeout=task.timeout
            )
            part["lightgbm"] = merged.to_lightgbm()
    elif spec.output == "model":
        export_feature_owner(
            task.channels[spec.requester], model, names=names, timeout=task.timeout
        )
    return [json.dumps(part, sort_keys=True)], units


PaidBy = Literal["aligned_row", "contribution"]


def contribution_units(rows: int, own_splits: int, total_splits: int) -> int:
    """A feature owner's usage units when paid by contribution: its ``rows`` (aligned) times its
    share of the model's splits, rounded up (a provider with one split in a large model is paid
    for a row); none when the model has no split at all."""
    if not 0 <= own_splits <= total_splits:
        raise ValueError("a party's splits are some of the model's splits")
    return -(-rows * own_splits // total_splits) if total_splits else 0


def _owner_units(
    task: Run, spec: VerticalGbdtSpec, tally: SplitTally, rows: int
) -> tuple[int, dict[str, object]]:
    """A feature owner's usage units for its ``rows`` (aligned), and what it measured."""
    own, total = tally.own_splits, tally.total_splits
    paid_by: PaidBy = "aligned_row"
    if task.terms is not None and task.terms.price.unit == "contribution":
        paid_by = "contribution"
    units = contribution_units(rows, own, total) if paid_by == "contribution" else rows
    measured: dict[str, object] = {"splits": {"own": own, "total": total}}
    if len(task.owners) > 2:
        other = next(org for org in task.owners if org not in (task.org, spec.requester))
        agree = shapes_agree(task.channels[other], tally.digest(), task.timeout)
        measured["shapes_agree"] = agree
        if not agree:  # the label holder sent the feature owners different trees
            units = rows
    return units, measured | {"paid_by": paid_by, "units": units}


def shapes_agree(channel: Channel, digest: str, timeout: float) -> bool:
    """Whether the feature owner at the other end of ``channel`` was sent the same trees: each
    sends the other the hash of its trees' shapes (which both know: it tells them nothing new)."""
    channel.send(digest.encode())
    return channel.recv(timeout) == digest.encode()


def gbdt_config(spec: VerticalGbdtSpec, timeout: float) -> GbdtConfig:
    """The training configuration every party derives from the spec (the key size is the
    protocol's, 2048 bits)."""
    params = spec.gbdt
    return GbdtConfig(
        trees=params.trees,
        max_depth=params.depth,
        learning_rate=params.learning_rate,
        max_bins=params.bins,
        l2=params.l2,
        min_child_samples=params.min_child_samples,
        row_subsample=params.row_subsample,
        col_subsample=params.col_subsample,
        early_stopping_rounds=params.early_stopping_rounds,
        timeout=timeout,
    )


def _labels(task: Run, common: list[bytes]) -> F64:
    """The label holder's labels (its input's last column) of the aligned rows."""
    position = {key: index for index, key in reversed(list(enumerate(task.keys)))}
    try:
        return np.array([float(task.rows[position[key]][-1]) for key in common])
    except ValueError as exc:
        raise TaskRefused(FailureReason.POLICY_VIOLATION, f"non-numeric label: {exc}") from exc


def _commitment(salt: bytes, model: object) -> str:
    return hashlib.sha256(salt + json.dumps(model, sort_keys=True).encode()).hexdigest()


def _exchange_commitments(task: Run, spec: VerticalGbdtSpec, own: str) -> list[str]:
    """Every party's commitment, in input order: the feature owners send theirs to the label
    holder, which sends the whole list back; each checks that the list holds its own."""
    owners = task.owners
    if not task.is_requester:
        channel: Channel = task.channels[spec.requester]
        channel.send(own.encode())
        try:
            commitments = [str(c) for c in json.loads(channel.recv(task.timeout))]
        except ValueError as exc:
            raise TaskRefused(FailureReason.PROTOCOL_ERROR, f"bad commitments: {exc}") from exc
        if len(commitments) != len(owners) or commitments[owners.index(task.org)] != own:
            raise TaskRefused(FailureReason.PROTOCOL_ERROR, "the model binds another part of ours")
        return commitments
    theirs = [task.channels[org].recv(task.timeout).decode() for org in owners[1:]]
    if any(len(c) != 64 or c.strip("0123456789abcdef") for c in theirs):
        raise TaskRefused(FailureReason.PROTOCOL_ERROR, "a malformed commitment")
    commitments = [own, *theirs]
    for org in owners[1:]:
        task.channels[org].send(json.dumps(commitments).encode())
    return commitments


VERTICAL_GBDT = BuiltinComponent(
    name="privledger.fl.vertical-gbdt",
    protocols=("vertical-gbdt",),
    kind="fl",
    parties=(2, 3),
    roles=("requester", "provider"),
    outputs=("requester", "model"),
    output_schema="the training report (output model: the merged model as LightGBM text)",
    enforces=("min_result", "price"),
    security=gbdt,
    runner=run,
)
