"""Set tasks: two-party PSI (ECDH, KKRT, RR22), difference, membership, three-party intersection and
union. A provider of a two-party PSI refuses a requester set over its grant's cap; it is paid for
the matched rows when it learns them, else for the keys it answered."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

from privledger.evm.contracts import FailureReason
from privledger.node import results
from privledger.node.components import Role
from privledger.node.compute import bucket_executor
from privledger.node.runners.base import InputForm, Run, RunOutput, TaskRefused
from privledger.node.runners.builtin import BuiltinComponent
from privledger.node.spec import KkrtSpec
from privledger.protocols import jsonlines
from privledger.protocols.psi import buckets, ecdh, kkrt, multiparty, rr22
from privledger.protocols.psi.common import PsiResult

# the OT/VOLE-based PSIs, one interface (run_psi, run_psi_column); they take the key column as
# an Arrow array (Run.column)
KEYED_PSI = {"kkrt": kkrt, "rr22": rr22}
COLUMN_PROTOCOLS = set(KEYED_PSI)
BUCKET_WORKERS = 2  # processes per party doing the bucketed PSI's CPU work
RESULT_SLICE_ITEMS = 1 << 20  # items of a column output encoded at a time


def run(task: Run) -> RunOutput:
    """PSI: the output is the intersection; matched rows are what providers are paid for."""
    protocol = task.spec.protocol
    if protocol in ("intersection3", "union3"):
        return _three_party(task)
    if protocol == "membership":
        return _membership(task)
    if protocol == "difference":
        return _difference(task)
    if isinstance(task.spec, KkrtSpec) and task.spec.buckets is not None:
        return _bucketed(task, task.spec)
    if task.column is not None:
        return _column(task)
    if protocol == "ecdh" and task.spec.output == "size":
        return _ecdh_size(task)
    if protocol == "ecdh":
        result = _ecdh(task)
    else:
        result = KEYED_PSI[protocol].run_psi(
            task.capped_channel(len(task.keys)),
            task.keys,
            role=task.role,
            reveal_to_provider=task.spec.output == "both",
            timeout=task.timeout,
        )
    if not result.learned_output:
        return None, result.peer_size  # a provider not told the matches: the keys it answered
    task.check_release(len(result.intersection), "matched rows")
    return [item.decode() for item in result.intersection], len(result.intersection)


def _ecdh_size(task: Run) -> RunOutput:
    """Size-only ECDH-PSI: both parties learn how many keys they share and nothing else; the
    provider refuses a size under its release threshold and is paid for the matched rows."""
    with _provider_threshold():
        size = ecdh.run_psi_size(
            task.capped_channel(len(task.keys)),
            task.keys,
            role=task.role,
            min_result=task.min_release,
            timeout=task.timeout,
        )
    if not task.is_requester:
        return None, size
    task.check_release(size, "matched rows")
    return [str(size)], size


def _ecdh(task: Run) -> PsiResult:
    """ECDH-PSI with its cardinality phase: the provider itself refuses to release an
    intersection under its release threshold (its policy's and its grant's), whatever the
    requester's node does."""
    with _provider_threshold():
        return ecdh.run_psi(
            task.capped_channel(len(task.keys)),
            task.keys,
            role=task.role,
            reveal_to_provider=task.spec.output == "both",
            timeout=task.timeout,
            min_result=task.min_release,
        )


@contextmanager
def _provider_threshold() -> Iterator[None]:
    """The provider's refusal of an intersection under its threshold, as the task's failure."""
    try:
        yield
    except ecdh.PsiResultTooSmall as small:
        raise TaskRefused(
            FailureReason.POLICY_VIOLATION,
            f"{small.size} matched rows is below the provider's release threshold {small.least}",
        ) from small


def _column(task: Run) -> RunOutput:
    """KKRT or RR22 on the key column as Arrow reads it (no Python object per row, up to 2^24
    rows and more). The intersection comes in ``bytes`` order, the order of a result file
    (:mod:`.results`), and is written to the result file from the Arrow column, a slice of
    :data:`RESULT_SLICE_ITEMS` at a time: no Python string per item, and no sort and encoding
    of a list after the task (~0.1 s of CPU at 2^19 items)."""
    result = KEYED_PSI[task.spec.protocol].run_psi_column(
        task.capped_channel(len(task.column)),
        task.column,
        role=task.role,
        reveal_to_provider=task.spec.output == "both",
        timeout=task.timeout,
    )
    matched = len(result.intersection)
    if not result.learned_output:
        return None, result.peer_size  # a provider not told the matches: the keys it answered
    task.check_release(matched, "matched rows")
    out = results.path_of(task.node.settings.results_dir, task.task.task_id)
    try:
        with out.open("wb") as handle:
            for start in range(0, matched, RESULT_SLICE_ITEMS):
                handle.write(jsonlines.encode(result.intersection.slice(start, RESULT_SLICE_ITEMS)))
    except BaseException:
        out.unlink(missing_ok=True)  # an item that is not UTF-8 text: no half a result file
        raise
    return out, matched


def _difference(task: Run) -> RunOutput:
    items = task.keys
    difference = multiparty.run_difference(
        task.only_channel(), items, role=task.role, timeout=task.timeout
    )
    if not difference.learned_output:
        return None, 0
    # a provider is paid for the rows it matched: those the requester could drop
    matched = len(set(items)) - len(difference.difference)
    task.check_release(matched, "matched rows")  # A\B reveals A∩B as well
    return [item.decode() for item in difference.difference], matched


def _membership(task: Run) -> RunOutput:
    """Anonymous membership query: the requester's one key against the holder's set."""
    if not task.is_requester:
        multiparty.answer_membership(task.only_channel(), task.keys, timeout=task.timeout)
        return None, 0
    keys = set(task.keys)
    if len(keys) != 1:
        raise TaskRefused(
            FailureReason.POLICY_VIOLATION, "a membership query dataset holds exactly one key"
        )
    (key,) = keys
    answer = multiparty.query_membership(task.only_channel(), key, timeout=task.timeout)
    return [json.dumps([key.decode(), answer.member])], 1


def _three_party(task: Run) -> RunOutput:
    """Three-party intersection or union; the requester (index 0) receives the output."""
    order = task.spec.participants  # the requester first: index 0 leads / receives
    index = order.index(task.org)
    peers = {order.index(org): channel for org, channel in task.channels.items()}
    if task.spec.protocol == "intersection3":
        result = multiparty.run_intersection(
            index, peers, task.keys, leader=0, timeout=task.timeout
        )
    else:
        result = multiparty.run_union(index, peers, task.keys, receiver=0, timeout=task.timeout)
    if not result.learned_output:
        return None, 0
    if task.spec.protocol == "intersection3":
        task.check_release(len(result.items), "common rows")
    return [item.decode() for item in result.items], len(result.items)


def _bucketed(task: Run, spec: KkrtSpec) -> RunOutput:
    """KKRT-PSI over files too large for memory: both sides stream their column into
    ``buckets`` partitions keyed by the spec hash and write the intersection to a file; the
    per-bucket work runs on the node's Ray cluster when it names one, else in local processes."""
    mine = task.mine
    if task.source is None or mine is None or spec.buckets is None:
        raise TaskRefused(FailureReason.PROTOCOL_ERROR, "a bucketed task needs its input file")
    out = results.path_of(task.node.settings.results_dir, task.task.task_id)
    with bucket_executor(task.node.settings.ray_address, BUCKET_WORKERS) as executor:
        try:
            result = buckets.run_bucketed_psi(
                task.only_channel(),
                task.role,
                task.source,
                mine.column,
                out,
                buckets=spec.buckets,
                workers=BUCKET_WORKERS,
                reveal_to_provider=spec.output == "both",
                timeout=task.timeout,
                partition_key=hashlib.sha256(b"privledger/psi-buckets" + spec.hash).digest()[:16],
                work_dir=out.parent,
                executor=executor,
            )
        except BaseException:
            out.unlink(missing_ok=True)  # the buckets it was told before the run ended
            raise
    if not result.learned_output:
        return None, result.matched
    try:
        task.check_release(result.matched, "matched rows")
    except TaskRefused:
        out.unlink(missing_ok=True)
        raise
    return out, result.matched


def input_form(spec: object) -> InputForm:
    """A bucketed KKRT task streams its file; KKRT and RR22 take the key column as Arrow."""
    if isinstance(spec, KkrtSpec) and spec.buckets is not None:
        return "file"
    return "column" if getattr(spec, "protocol", None) in COLUMN_PROTOCOLS else "rows"


PAIR_ROLES: tuple[Role, ...] = ("requester", "provider")
MATCHES = "a key of the intersection (or, output size, the count)"


def _pair_psi(
    protocol: str,
    security: ModuleType,
    outputs: tuple[str, ...],
    enforces: tuple[str, ...],
    form: Callable[[object], InputForm] | None = None,
) -> BuiltinComponent:
    return BuiltinComponent(
        name=f"privledger.psi.{protocol}",
        protocols=(protocol,),
        kind="psi",
        parties=(2, 2),
        roles=PAIR_ROLES,
        outputs=outputs,
        output_schema=MATCHES,
        enforces=enforces,
        security=security,
        runner=run,
        input_form=form,
    )


ECDH = _pair_psi(
    "ecdh", ecdh, ("requester", "both", "size"), ("max_requester_set", "min_result", "price")
)
KKRT = _pair_psi("kkrt", kkrt, ("requester", "both"), ("max_requester_set", "price"), input_form)
RR22 = _pair_psi("rr22", rr22, ("requester", "both"), ("max_requester_set", "price"), input_form)
SET_OPERATIONS = BuiltinComponent(
    name="privledger.psi.set-operations",
    protocols=("intersection3", "union3", "difference", "membership"),
    kind="psi",
    parties=(2, 3),
    roles=PAIR_ROLES,
    outputs=("requester",),
    output_schema="a key of the result set (membership: whether the requester's key is held)",
    enforces=(),
    security=multiparty,
    runner=run,
)
