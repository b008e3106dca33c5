"""Federated-learning tasks: vertical logistic regression (PSI alignment inside the task, secret
shared training, Shapley contributions; the model stays shared unless the spec and every data
owner's terms release the weights), joint prediction with a registered vertical model (logistic
regression, or gradient-boosted trees from :mod:`privledger.node.runners.gbdt`),
horizontal FedAvg / FedProx with secure aggregation (the requester aggregates), and prediction
with a registered horizontal model (F18: every call is logged)."""

from __future__ import annotations

import contextvars
import hashlib
import json
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from sqlmodel import Session

from privledger.evm.contracts import FailureReason
from privledger.evm.hashing import keccak256
from privledger.node import results
from privledger.node.audit import record
from privledger.node.budget import horizontal_noise_multiplier, vertical_budget
from privledger.node.models import vertical_model_hash
from privledger.node.runners.base import Run, RunOutput, TaskRefused
from privledger.node.runners.builtin import BuiltinComponent
from privledger.node.services import log_call
from privledger.node.spec import (
    HORIZONTAL_PROTOCOLS,
    MAX_STATS_PARTIES,
    MODEL_COLUMN,
    HorizontalSpec,
    PredictSpec,
    TaskSpec,
    VerticalGbdtSpec,
    VerticalLrSpec,
    VerticalPredictSpec,
    parse_canonical,
)
from privledger.protocols.channel import Channel, ChannelError, channel_pair, recv_exact
from privledger.protocols.fl import horizontal as horizontal_fl
from privledger.protocols.fl import joint as joint_fl
from privledger.protocols.fl import vertical as vertical_fl
from privledger.protocols.fl.contribution import mean_log_likelihood, shapley_values
from privledger.protocols.fl.dp import epsilon
from privledger.protocols.fl.federation import (
    FederatedModel,
    FederationConfig,
    run_aggregator,
    run_client,
)
from privledger.protocols.fl.gbdt import GbdtJointScorer, LabelHolderModel, OwnerModel
from privledger.protocols.fl.horizontal import F64, ClientData
from privledger.protocols.fl.joint import JointScorer, Released, predict_joint, receive_joint
from privledger.protocols.fl.vertical import (
    PartyModel,
    SharedLrScorer,
    SharedModel,
    VerticalConfig,
    VerticalDp,
    commit_parts,
    predict_vertical,
    predict_vertical_plaintext,
    predict_vertical_shared,
    train_vertical_plaintext,
    train_vertical_ss,
    train_vertical_ss_shared,
)
from privledger.protocols.mpc.sharing import Party
from privledger.protocols.psi import kkrt, multiparty
from privledger.store.models import LocalModel, LocalTask

VALIDATION_BYTE = 51  # ~20% of aligned rows are held out to measure contributions
MAX_PREDICT_ROWS = 1_000_000


def run(task: Run) -> RunOutput:
    spec = task.spec
    if isinstance(spec, HorizontalSpec):
        return _horizontal(task, spec)
    if isinstance(spec, PredictSpec):
        return _predict(task)
    if isinstance(spec, VerticalLrSpec):
        return _vertical(task, spec)
    if isinstance(spec, VerticalPredictSpec):
        return _vertical_predict(task, spec)
    raise TaskRefused(FailureReason.SPEC_MISMATCH, f"{spec.protocol} is not a learning protocol")


def federation_config(spec: HorizontalSpec) -> FederationConfig:
    """The training configuration every party derives from the spec alone."""
    return FederationConfig(
        model="lr" if spec.protocol == "horizontal-lr" else "mlp",
        rounds=spec.rounds or FederationConfig.rounds,
        proximal_mu=spec.proximal_mu or 0.0,
        seed=int(spec.nonce[:8], 16),
        noise_multiplier=spec.dp.noise_multiplier if spec.dp else 0.0,
        dp_clip_norm=spec.dp.clip_norm if spec.dp else FederationConfig.dp_clip_norm,
    )


def dp_budget(spec: HorizontalSpec, rounds: int) -> dict[str, float | int | str] | None:
    """The privacy budget a DP task spends (recorded with its model), or None without DP: at
    the noise left on the sums if the aggregator adds none to its own rows."""
    if spec.dp is None:
        return None
    effective = horizontal_noise_multiplier(spec)
    return {
        "noise_multiplier": spec.dp.noise_multiplier,
        "effective_noise_multiplier": effective,
        "clip_norm": spec.dp.clip_norm,
        "delta": spec.dp.delta,
        "rounds": rounds,
        "epsilon": epsilon(effective, rounds, spec.dp.delta),
        "accountant": "RDP (dp-accounting)",
    }


def _numbers(task: Run, width: int, *, labelled: bool) -> tuple[npt.NDArray[np.float64], ...]:
    """Feature columns (after the key column) and, if ``labelled``, the last column as labels."""
    try:
        features = np.array(
            [[float(value) for value in row[1 : 1 + width]] for row in task.rows], dtype=float
        ).reshape(len(task.rows), width)
        if not labelled:
            return (features,)
        labels = np.array([float(row[-1]) for row in task.rows])
    except ValueError as exc:
        raise TaskRefused(FailureReason.POLICY_VIOLATION, f"non-numeric value: {exc}") from exc
    if not np.all(np.isfinite(features)) or not np.all((labels == 0) | (labels == 1)):
        raise TaskRefused(FailureReason.POLICY_VIOLATION, "features must be finite, labels 0/1")
    return features, labels


def _horizontal(task: Run, spec: HorizontalSpec) -> RunOutput:
    """Horizontal FL: every input is a client; the requester aggregates, and trains its own rows
    as one more client through an in-process channel when it holds an input."""
    clients = sorted(task.owners)
    config = federation_config(spec)
    width = len(spec.inputs[0].features or ())

    def client(channel: Channel) -> int:
        features, labels = _numbers(task, width, labelled=True)
        try:
            data = ClientData(features, labels)
        except ValueError as exc:
            raise TaskRefused(FailureReason.POLICY_VIOLATION, str(exc)) from exc
        task.withheld.units = data.labels.size
        index = clients.index(task.org)
        run_client(
            channel, task.org, data, config, index=index, clients=len(clients), timeout=task.timeout
        )
        return data.labels.size

    if not task.is_requester:
        return None, client(task.channels[spec.requester])
    links = {org: task.channels[org] for org in clients if org != task.org}
    local: list[BaseException] = []
    thread = None
    if task.org in clients:
        links[task.org], own_end = channel_pair()

        def own_rows() -> None:
            try:
                client(own_end)
            except BaseException as exc:  # reported below, after the aggregator finished
                local.append(exc)
                own_end.close()

        thread = threading.Thread(  # in the task's context: its lines name the task
            target=contextvars.copy_context().run,
            args=(own_rows,),
            name=f"fl-{task.task.task_id}",
            daemon=True,
        )
        thread.start()
    try:
        model = run_aggregator(links, config, features=width, timeout=task.timeout)
    finally:
        for org in clients:
            if org == task.org:
                links[org].close()
        if thread is not None:
            thread.join(task.timeout)
    if local and not isinstance(local[0], ChannelError):
        raise local[0]
    task.dropped.update(set(clients) - set(model.clients) - {task.org})
    mine = task.mine
    names = list((mine or spec.inputs[0]).features or ())
    output = {"protocol": spec.protocol, "features": names, **model.to_json()}
    budget = dp_budget(spec, model.rounds)
    if budget is not None:
        output["dp"] = budget
    return [json.dumps(output, sort_keys=True)], model.rows


def _predict(task: Run) -> RunOutput:
    """Prediction with a registered model: the requester sends its feature rows, the model's
    holder answers one score per row. The holder sees the rows it scores (docs/protocols.md);
    the requester learns the scores, never the model."""
    channel = task.only_channel()
    if task.is_requester:
        mine = task.mine
        assert mine is not None
        (features,) = _numbers(task, len(mine.features or ()), labelled=False)
        rows, width = features.shape
        channel.send(json.dumps({"rows": rows, "features": width}).encode())
        channel.send(features.astype("<f8").tobytes())
        answer = json.loads(channel.recv(task.timeout))
        if "error" in answer:
            raise TaskRefused(FailureReason.POLICY_VIOLATION, f"model: {answer['error']}")
        scores = np.frombuffer(recv_exact(channel, 8 * rows, task.timeout, "scores"), "<f8")
        pairs = zip(task.rows, scores, strict=True)
        return [json.dumps([row[0].decode(), float(score)]) for row, score in pairs], rows
    return _serve_prediction(task, channel)


def _serve_prediction(task: Run, channel: Channel) -> RunOutput:
    mine = task.mine
    assert mine is not None
    stored = _stored_model(task, mine.dataset)
    model = FederatedModel.from_json(json.loads(Path(stored.path).read_text()))
    header = json.loads(channel.recv(task.timeout))
    rows, width = int(header["rows"]), int(header["features"])
    problem = None
    if width != model.mean.size:
        problem = f"the model takes {model.mean.size} features, not {width}"
    elif not 0 < rows <= MAX_PREDICT_ROWS:
        problem = f"1 to {MAX_PREDICT_ROWS} rows per call"
    _log_model_call(task, stored, f"refused: {problem}" if problem else f"ran: {rows} rows")
    if problem is not None:
        channel.send(json.dumps({"error": problem}).encode())
        raise TaskRefused(FailureReason.POLICY_VIOLATION, problem)
    data = recv_exact(channel, 8 * rows * width, task.timeout, "feature rows")
    features = np.frombuffer(data, "<f8").reshape(rows, width)
    channel.send(json.dumps({"scores": rows}).encode())
    channel.send(model.predict(features).astype("<f8").tobytes())
    return None, rows


def validation_row(key: bytes) -> bool:
    """Whether an aligned row is held out for validation (the same answer on every node)."""
    return hashlib.sha256(b"privledger/fl/validation/" + key).digest()[0] < VALIDATION_BYTE


def alignment_order(requester: int, holders: list[int]) -> list[int]:
    """The order in which the ``holders`` of a vertical task learn their common ids: the
    providers in input order, the requester last."""
    return [
        *(org for org in holders if org != requester),
        *(org for org in holders if org == requester),
    ]


def _aligned_ids(
    task: Run, holders: list[int], *, fewest: int, shuffled: bool = False
) -> list[bytes]:
    """The ids every party in ``holders`` holds, in one order on all sides, released to each
    holder only once every provider before it in :func:`alignment_order` has checked that they
    are at least ``fewest`` and its release threshold (F17; the threshold is enforced by the
    party that wants it, not by the requester, which would learn its ids' membership first).

    The first provider learns the intersection -- as the KKRT receiver (the party with the
    output) with one other holder, as the leader of the three-party intersection with two --
    in ascending order, or ``shuffled``, checks it, and sends the ids to the next holder, which
    checks that they are its own and distinct, checks them in turn and sends them on, the
    requester last (every party of a vertical task must learn the common ids anyway). A single
    holder takes its own ids. What a provider answers is its rows until they are aligned, then
    the aligned rows (:class:`.Withheld`)."""
    task.withheld.units = len(task.keys)
    order = alignment_order(task.spec.requester, holders)
    at = order.index(task.org)
    common = _alignment_psi(task, order)
    if common is None:
        common = _received_ids(task, order[at - 1], set(task.keys))
    elif shuffled:
        secrets.SystemRandom().shuffle(common)
    if len(common) < fewest:
        raise TaskRefused(
            FailureReason.POLICY_VIOLATION, f"{len(common)} aligned rows: the task needs {fewest}"
        )
    task.check_release(len(common), "aligned rows")
    task.withheld.units = len(common)
    if at + 1 < len(order):
        _send_ids(task, order[at + 1], common)
    return common


def _alignment_psi(task: Run, order: list[int]) -> list[bytes] | None:
    """This holder's part of the PSI of the holders ``order``: the common ids (ascending) at the
    first, the only one with an output; None at the others, which learn no id from it."""
    ids, first = task.keys, order[0] == task.org
    if len(order) == 1:
        return sorted(set(ids))
    if len(order) == 2:
        role: Literal["requester", "provider"] = "requester" if first else "provider"
        peer = task.channels[order[1] if first else order[0]]
        found = kkrt.run_psi(peer, ids, role=role, timeout=task.timeout)
        return found.intersection if first else None
    peers = {index: task.channels[org] for index, org in enumerate(order) if org != task.org}
    result = multiparty.run_intersection(
        order.index(task.org), peers, ids, leader=0, timeout=task.timeout
    )
    return sorted(result.items) if first else None


def _send_ids(task: Run, org: int, common: list[bytes]) -> None:
    channel = task.channels[org]
    if org == task.spec.requester:
        channel.delivering()  # which of its ids a provider holds: the requester's first output
    channel.send(json.dumps([item.hex() for item in common]).encode())


def _received_ids(task: Run, sender: int, own: set[bytes]) -> list[bytes]:
    try:
        sent = json.loads(task.channels[sender].recv(task.timeout))
        common = [bytes.fromhex(item) for item in sent]
    except (ValueError, TypeError) as exc:
        raise TaskRefused(FailureReason.PROTOCOL_ERROR, f"malformed common ids: {exc}") from exc
    if not set(common) <= own:
        raise TaskRefused(FailureReason.PROTOCOL_ERROR, f"org {sender} sent ids this party lacks")
    if len(set(common)) != len(common):
        raise TaskRefused(FailureReason.PROTOCOL_ERROR, f"org {sender} sent an id twice")
    return common


def _feature_rows(task: Run, common: list[bytes], width: int) -> F64:
    """This party's feature columns of the aligned rows, in the aligned order."""
    position = {key: index for index, key in reversed(list(enumerate(task.keys)))}
    try:
        return np.array(
            [[float(value) for value in task.rows[position[key]][1 : 1 + width]] for key in common],
            dtype=float,
        ).reshape(len(common), width)
    except ValueError as exc:
        raise TaskRefused(FailureReason.POLICY_VIOLATION, f"non-numeric value: {exc}") from exc


def train_model(
    party: Party,
    features: F64,
    labels: F64 | None,
    *,
    label_holder: int,
    config: VerticalConfig,
    reveal: bool = False,
    group: tuple[int, ...] | None = None,
) -> PartyModel | SharedModel:
    """Train a vertical LR model: kept shared, or (``reveal``) each party's weights opened."""
    if reveal:
        return train_vertical_ss(
            party, features, labels, label_holder=label_holder, config=config, group=group
        )
    return train_vertical_ss_shared(
        party, features, labels, label_holder=label_holder, config=config, group=group
    )


def model_part(party: Party, model: PartyModel | SharedModel) -> dict[str, object]:
    """What a party keeps of a trained vertical model (its task output): its own weights, or
    its shares of every weight with its salt and every party's commitment to its shares."""
    if isinstance(model, PartyModel):
        return {"weights": model.weights.tolist(), "intercept": model.intercept}
    salt, commitments = commit_parts(party, model)
    return {
        **model.to_json(),
        "salt": salt.hex(),
        "commitments": [commitment.hex() for commitment in commitments],
    }


def _vertical(task: Run, spec: VerticalLrSpec) -> RunOutput:
    """Vertical logistic regression over two or three parties: align their rows by PSI inside
    the task (every party learns the common ids, as vertical FL needs), then train by secret
    sharing; each party keeps its own model part (weights of its columns, the intercept at the
    label holder). A held-out fifth measures each party's exact Shapley value, retraining every
    coalition that holds the labels (for three parties, the two pairs too). With ``dp`` every
    training is differentially private and the budget of all of them is recorded."""
    mine = task.mine
    assert mine is not None  # the dealer never reaches a runner
    common = _aligned_ids(task, task.owners, fewest=2)
    width = len(mine.features or ())
    features = _feature_rows(task, common, width)
    labels = None
    if task.is_requester:
        position = {key: index for index, key in reversed(list(enumerate(task.keys)))}
        try:
            labels = np.array([float(task.rows[position[key]][-1]) for key in common])
        except ValueError as exc:
            raise TaskRefused(FailureReason.POLICY_VIOLATION, f"non-numeric label: {exc}") from exc
    order = common
    # each party standardises its own columns; the means and scales travel with its model
    mean, scale = features.mean(axis=0), features.std(axis=0)
    scale[scale == 0] = 1.0
    standard = (features - mean) / scale
    # a validation fifth, chosen from the common ids alike on all sides, measures contributions
    held_out = np.array([validation_row(key) for key in common], dtype=bool)
    train, valid = standard[~held_out], standard[held_out]
    party = task.party()
    label_holder = task.owners.index(spec.requester)
    train_labels = None if labels is None else labels[~held_out]

    dp = None if spec.dp is None else VerticalDp(spec.dp.noise_multiplier, spec.dp.clip_norm)
    config = VerticalConfig(epochs=spec.rounds or VerticalConfig.epochs, dp=dp)
    reveal = spec.output == "weights"

    def coalition(group: tuple[int, ...] | None) -> tuple[PartyModel | SharedModel, F64 | None]:
        model = train_model(
            party,
            train,
            train_labels,
            label_holder=label_holder,
            config=config,
            reveal=reveal,
            group=group,
        )
        if isinstance(model, PartyModel):
            scores = predict_vertical(party, valid, model, requester=label_holder, group=group)
        else:
            scores = predict_vertical_shared(
                party, valid, model, requester=label_holder, label_holder=label_holder
            )
        return model, scores

    model, joint = coalition(None)
    pairs: dict[int, F64 | None] = {}
    if len(task.owners) == 3:
        # the coalitions {requester, partner} train at the same time (each over its own
        # channels), so no partner idles for a whole training waiting for the requester
        partners = [org for org in task.owners if org != spec.requester]
        mine_to_run = partners if task.is_requester else [task.org]
        with ThreadPoolExecutor(len(mine_to_run), thread_name_prefix="coalition") as pool:
            futures = {
                partner: pool.submit(coalition, (label_holder, task.owners.index(partner)))
                for partner in mine_to_run
            }
            pairs = {partner: future.result()[1] for partner, future in futures.items()}
    part: dict[str, object] = {
        "aligned": len(order),
        "features": list(mine.features or ()),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        **model_part(party, model),
    }
    if spec.dp is not None:  # the budget every party records (its output digest is anchored)
        part["dp"] = vertical_budget(spec)
    if isinstance(model, SharedModel):
        part["model_hash"] = "0x" + vertical_model_hash(task.task.task_id, spec, part).hex()
    if joint is not None and labels is not None:
        part["contributions"] = _shapley(task, standard, labels, held_out, joint, pairs, config)
    return [json.dumps(part, sort_keys=True)], len(order)


def _shapley(
    task: Run,
    standard: F64,
    labels: F64,
    held_out: npt.NDArray[np.bool_],
    joint: F64,
    pairs: dict[int, F64 | None],
    config: VerticalConfig,
) -> dict[str, float]:
    """Exact Shapley values by validation log-likelihood at the label holder (the requester).

    A coalition without the requester has no labels: its value is the label prior. The
    requester alone retrains its own columns in plaintext; larger coalitions were trained by
    secret sharing (``joint`` for all parties, ``pairs`` for the requester with one partner).
    """
    requester = task.spec.requester
    train, valid = ~held_out, held_out
    prior = float(np.clip(labels[train].mean(), 1e-6, 1 - 1e-6))
    v_none = mean_log_likelihood(np.full(int(valid.sum()), prior), labels[valid])
    own = train_vertical_plaintext([standard[train]], labels[train], config=config)
    v_own = mean_log_likelihood(predict_vertical_plaintext([standard[valid]], own), labels[valid])
    v_all = mean_log_likelihood(joint, labels[valid])
    v_pair = {
        org: mean_log_likelihood(scores, labels[valid])
        for org, scores in pairs.items()
        if scores is not None
    }

    def value(members: frozenset[int]) -> float:
        if requester not in members:
            return v_none
        if len(members) == len(task.owners):
            return v_all
        if len(members) == 1:
            return v_own
        (partner,) = members - {requester}
        return v_pair[partner]

    values = shapley_values(task.owners, value)
    return {str(org): share for org, share in values.items()}


def _vertical_predict(task: Run, spec: VerticalPredictSpec) -> RunOutput:
    """Joint prediction with a registered vertical model: the parties holding rows (every
    model party but the label holder, and a requester's batch) align them by PSI; the label
    holder learns only their count; each model party turns its own columns into shares of the
    scores; only the output the spec names -- kept to the grant terms by every provider -- is
    released, to the requester (:mod:`privledger.protocols.fl.joint`)."""
    holders = [item.org for item in spec.inputs if item.column != MODEL_COLUMN]
    parties = [item.org for item in spec.inputs if item.column == MODEL_COLUMN or item.features]
    order = alignment_order(spec.requester, holders)
    leader = order[0]
    # the model parties without rows learn the count from the last provider holding rows, which
    # checked it (the requester's batch, alone, counts itself)
    counter = next((org for org in reversed(order) if org != spec.requester), leader)
    by_value = spec.output == "ids" and spec.requester not in holders
    try:
        model = _model_part_for(task, spec, parties) if task.org in parties else None
    except TaskRefused as exc:
        if task.org == spec.model.org:  # the call log holds refused calls too
            _log_model_call(task, _stored_model(task, spec.model.dataset), f"refused: {exc}")
        raise
    if task.org in holders:
        # by value, positions in the leader's order are all the requester learns besides ids
        common = _aligned_ids(task, holders, fewest=1, shuffled=by_value)
        count = len(common)
        if task.org == counter:
            for org in parties:
                if org not in holders:
                    task.channels[org].send(str(count).encode())
    else:
        common, count = [], _received_count(task, counter)
        if count < 1:
            raise TaskRefused(FailureReason.POLICY_VIOLATION, "no aligned row to score")
        task.check_release(count, "aligned rows")
    if task.org == spec.model.org:
        stored = _stored_model(task, spec.model.dataset)
        _log_model_call(task, stored, f"ran: {count} rows, output {spec.output}")
    party = task.party()
    index = task.owners.index
    requester_holds_ids = spec.requester in holders
    if model is None:  # the requester's batch, outside the model
        released = receive_joint(
            party,
            tuple(index(org) for org in parties),
            rows=count,
            output=spec.output,
            requester_holds_ids=requester_holds_ids,
            frac_bits=VerticalConfig.frac_bits,
            probability=lambda scores: np.asarray(1.0 / (1.0 + np.exp(-scores))),
        )
        return _released_items(released, common), count
    mine = task.mine
    assert mine is not None
    features = np.zeros((count, 0))
    if mine.features:
        features = _feature_rows(task, common, len(mine.features))
    group = tuple(index(org) for org in parties)
    scorer, features = _joint_scorer(*model, features, group, index(spec.model.org))
    output = predict_joint(
        party,
        scorer,
        features,
        rows=count,
        requester=index(spec.requester),
        output=spec.output,
        threshold=spec.threshold,
        requester_holds_ids=requester_holds_ids,
        id_holder=index(leader) if by_value else None,
        ids=common if by_value and task.org == leader else None,
    )
    if output is None:
        return None, count
    return _released_items(output, common), count


def _joint_scorer(
    training: TaskSpec, part: dict[str, object], features: F64, group: tuple[int, ...], holder: int
) -> tuple[JointScorer, F64]:
    """This party's scorer of the model's protocol and its columns as that model takes them."""
    if isinstance(training, VerticalGbdtSpec):  # trees take the raw columns
        trees = part["model"]
        assert isinstance(trees, dict)
        kind = LabelHolderModel if "leaf_values" in trees else OwnerModel
        scorer = GbdtJointScorer(kind.from_json(trees), group, holder, VerticalConfig.frac_bits)
        return scorer, features
    if features.shape[1]:
        features = (features - np.asarray(part["mean"])) / np.asarray(part["scale"])
    return SharedLrScorer(SharedModel.from_json(part), label_holder=holder), features


def _model_part_for(
    task: Run, spec: VerticalPredictSpec, parties: list[int]
) -> tuple[TaskSpec, dict[str, object]]:
    """The model's training spec and this party's stored part of the model, checked against
    the training task and the model's commitment on chain (which binds every party's part)."""
    with Session(task.node.engine) as session:
        row = session.get(LocalTask, spec.model_task)
    if row is None or row.spec_json is None or row.result_path is None:
        raise TaskRefused(
            FailureReason.PROTOCOL_ERROR, f"task {spec.model_task} left no model part here"
        )
    training = parse_canonical(row.spec_json.encode())
    kept = isinstance(training, VerticalGbdtSpec) or (
        isinstance(training, VerticalLrSpec) and training.output == "requester"
    )
    if not kept:
        raise TaskRefused(FailureReason.SPEC_MISMATCH, "the model task kept no shared model")
    assert isinstance(training, VerticalLrSpec | VerticalGbdtSpec)
    if [item.org for item in training.inputs] != parties or training.requester != spec.model.org:
        raise TaskRefused(
            FailureReason.SPEC_MISMATCH, "the model's parties differ from the training task's"
        )
    for ours, trained in zip(spec.inputs, training.inputs, strict=False):
        if ours.column != MODEL_COLUMN and ours.features != trained.features:
            raise TaskRefused(
                FailureReason.SPEC_MISMATCH, f"org {ours.org} names other columns than it trained"
            )
    (output,) = results.read(Path(row.result_path), limit=1)
    part: dict[str, object] = json.loads(output)
    asset = task.node.ledger.data.get_dataset(bytes.fromhex(spec.model.dataset[2:]))
    binding = bytes.fromhex(str(part.get("model_hash", "0x"))[2:])
    if asset.commitment != keccak256(binding):
        raise TaskRefused(
            FailureReason.SPEC_MISMATCH, "the model on chain does not bind this party's part"
        )
    return training, part


def _received_count(task: Run, sender: int) -> int:
    try:
        return int(task.channels[sender].recv(task.timeout).decode())
    except ValueError as exc:
        raise TaskRefused(FailureReason.PROTOCOL_ERROR, f"malformed row count: {exc}") from exc


def _released_items(released: Released, common: list[bytes]) -> list[str]:
    """The requester's result: ``[id, probability]`` per row, or the ids above the threshold."""
    if released.probabilities is not None:
        pairs = zip(common, released.probabilities, strict=True)
        return [json.dumps([key.decode(), float(p)]) for key, p in pairs]
    if released.above is not None:
        return [key.decode() for key, above in zip(common, released.above, strict=True) if above]
    return [key.decode() for key in released.ids or ()]


def _stored_model(task: Run, dataset: str) -> LocalModel:
    """The model registered on this node as ``dataset``."""
    with Session(task.node.engine) as session:
        stored = session.get(LocalModel, dataset.lower())
    if stored is None:
        raise TaskRefused(FailureReason.PROTOCOL_ERROR, f"{dataset} is not a model here")
    return stored


def _log_model_call(task: Run, stored: LocalModel, outcome: str) -> None:
    """The model owner's call log and audit trail (anchored in Merkle batches)."""
    record(
        task.node,
        action="model_access",
        actor=f"org {task.spec.requester}",
        subject=stored.model_id,
        outcome=outcome,
        task_id=task.task.task_id,
    )
    log_call(
        task.node,
        service=f"model:{stored.name}",
        task_id=task.task.task_id,
        caller_org=task.spec.requester,
        spec_hash="0x" + task.task.spec_hash.hex(),
        outcome=outcome,
    )


def _aggregator_may_hold_none(spec: object, org: int) -> bool:
    """A horizontal task's requester aggregates, and may train no rows of its own."""
    return org != getattr(spec, "requester", None)


VERTICAL_LR = BuiltinComponent(
    name="privledger.fl.vertical-lr",
    protocols=("vertical-lr",),
    kind="fl",
    parties=(2, 3),
    roles=("requester", "provider", "dealer"),
    outputs=("requester", "weights"),
    output_schema="the training report (each party's own weights, output weights) as JSON",
    enforces=("max_epsilon", "min_result", "price"),
    security=vertical_fl,
    runner=run,
)
HORIZONTAL = BuiltinComponent(
    name="privledger.fl.horizontal",
    protocols=HORIZONTAL_PROTOCOLS,
    kind="fl",
    parties=(2, MAX_STATS_PARTIES),
    roles=("aggregator", "provider"),
    outputs=("requester",),
    output_schema="the trained model and its training report as JSON",
    enforces=("max_epsilon", "price"),
    security=horizontal_fl,
    runner=run,
    holds_input=_aggregator_may_hold_none,
)
PREDICT = BuiltinComponent(
    name="privledger.fl.predict",
    protocols=("predict",),
    kind="fl",
    parties=(2, 2),
    roles=("requester", "provider"),
    outputs=("requester",),
    output_schema="[id, probability] for each of the requester's rows",
    enforces=("price",),
    security=horizontal_fl,
    runner=run,
)
VERTICAL_PREDICT = BuiltinComponent(
    name="privledger.fl.vertical-predict",
    protocols=("vertical-predict",),
    kind="fl",
    parties=(2, MAX_STATS_PARTIES),
    roles=("requester", "provider", "dealer"),
    outputs=("scores", "ids"),
    output_schema="[id, probability] per row (scores), or an id at the threshold or above (ids)",
    enforces=("min_result", "min_threshold", "price"),
    security=joint_fl,
    runner=run,
)
