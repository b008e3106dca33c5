"""Federated-learning tasks: vertical logistic regression (PSI alignment inside the task, secret
shared training, Shapley contributions), horizontal FedAvg / FedProx with secure aggregation (the
requester aggregates), and prediction with a registered model (F18: every call is logged)."""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sqlmodel import Session

from privledger.evm.contracts import FailureReason
from privledger.node.audit import record
from privledger.node.runners.base import Run, RunOutput, TaskRefused
from privledger.node.services import log_call
from privledger.node.spec import HorizontalSpec, PredictSpec, VerticalLrSpec
from privledger.protocols.channel import Channel, ChannelError, channel_pair, recv_exact
from privledger.protocols.fl.contribution import mean_log_likelihood, shapley_values
from privledger.protocols.fl.dp import epsilon
from privledger.protocols.fl.federation import (
    FederatedModel,
    FederationConfig,
    run_aggregator,
    run_client,
)
from privledger.protocols.fl.horizontal import F64, ClientData
from privledger.protocols.fl.vertical import (
    PartyModel,
    VerticalConfig,
    predict_vertical,
    predict_vertical_plaintext,
    train_vertical_plaintext,
    train_vertical_ss,
)
from privledger.protocols.psi import kkrt, multiparty
from privledger.store.models import LocalModel

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
    """The privacy budget a DP task spends (recorded with its model), or None without DP."""
    if spec.dp is None:
        return None
    return {
        "noise_multiplier": spec.dp.noise_multiplier,
        "clip_norm": spec.dp.clip_norm,
        "delta": spec.dp.delta,
        "rounds": rounds,
        "epsilon": epsilon(spec.dp.noise_multiplier, rounds, spec.dp.delta),
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

        thread = threading.Thread(target=own_rows, name=f"fl-{task.task.task_id}", daemon=True)
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
    holder answers one score per row. The holder sees the rows it scores (stated in the README);
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
    with Session(task.node.engine) as session:
        stored = session.get(LocalModel, mine.dataset.lower())
    if stored is None:
        raise TaskRefused(FailureReason.PROTOCOL_ERROR, f"{mine.dataset} is not a model here")
    model = FederatedModel.from_json(json.loads(Path(stored.path).read_text()))
    header = json.loads(channel.recv(task.timeout))
    rows, width = int(header["rows"]), int(header["features"])
    problem = None
    if width != model.mean.size:
        problem = f"the model takes {model.mean.size} features, not {width}"
    elif not 0 < rows <= MAX_PREDICT_ROWS:
        problem = f"1 to {MAX_PREDICT_ROWS} rows per call"
    outcome = f"refused: {problem}" if problem else f"ran: {rows} rows"
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


def _aligned_ids(task: Run) -> list[bytes]:
    """The ids every party holds, in one order on all sides: KKRT-PSI with output to both for
    two parties; for three, the three-party intersection at the requester, who then sends it
    to the two others (every party of a vertical task must learn the common ids anyway)."""
    spec, ids = task.spec, task.keys
    if len(task.owners) == 2:
        peer = next(org for org in task.owners if org != task.org)
        return kkrt.run_psi(
            task.channels[peer], ids, role=task.role, reveal_to_provider=True, timeout=task.timeout
        ).intersection
    order = [spec.requester, *(org for org in task.owners if org != spec.requester)]
    peers = {order.index(org): task.channels[org] for org in order if org != task.org}
    result = multiparty.run_intersection(
        order.index(task.org), peers, ids, leader=0, timeout=task.timeout
    )
    if task.is_requester:
        common = sorted(result.items)
        payload = json.dumps([item.hex() for item in common]).encode()
        for org in order[1:]:
            task.channels[org].send(payload)
        return common
    try:
        sent = json.loads(task.channels[spec.requester].recv(task.timeout))
        common = [bytes.fromhex(item) for item in sent]
    except (ValueError, TypeError) as exc:
        raise TaskRefused(FailureReason.PROTOCOL_ERROR, f"malformed common ids: {exc}") from exc
    if not set(common) <= set(ids):
        raise TaskRefused(FailureReason.PROTOCOL_ERROR, "the requester sent ids this party lacks")
    return common


def _vertical(task: Run, spec: VerticalLrSpec) -> RunOutput:
    """Vertical logistic regression over two or three parties: align their rows by PSI inside
    the task (every party learns the common ids, as vertical FL needs), then train by secret
    sharing; each party keeps its own model part (weights of its columns, the intercept at the
    label holder). A held-out fifth measures each party's exact Shapley value, retraining every
    coalition that holds the labels (for three parties, the two pairs too)."""
    rows, mine = task.rows, task.mine
    assert mine is not None  # the dealer never reaches a runner
    common = _aligned_ids(task)
    position = {key: index for index, key in reversed(list(enumerate(task.keys)))}
    order = [position[key] for key in common]
    width = len(mine.features or ())
    try:
        features = np.array(
            [[float(value) for value in rows[i][1 : 1 + width]] for i in order], dtype=float
        ).reshape(len(order), width)
        labels = np.array([float(rows[i][-1]) for i in order]) if task.is_requester else None
    except ValueError as exc:
        raise TaskRefused(FailureReason.POLICY_VIOLATION, f"non-numeric value: {exc}") from exc
    if len(order) < 2:
        raise TaskRefused(FailureReason.POLICY_VIOLATION, "fewer than 2 aligned rows")
    task.check_release(len(order), "aligned rows")
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

    config = VerticalConfig(epochs=spec.rounds or VerticalConfig.epochs)

    def coalition(group: tuple[int, ...] | None) -> tuple[PartyModel, F64 | None]:
        model = train_vertical_ss(
            party,
            train,
            train_labels,
            label_holder=label_holder,
            config=config,
            group=group,
        )
        scores = predict_vertical(party, valid, model, requester=label_holder, group=group)
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
        "weights": model.weights.tolist(),
        "intercept": model.intercept,
    }
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
