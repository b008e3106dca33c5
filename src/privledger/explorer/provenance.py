"""The provenance graph: datasets feed tasks, tasks anchor results, and datasets registered with
parents derive from them. Built from the reference index around one dataset or task, or around
the newest tasks."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from privledger.evm.contracts import Kind
from privledger.store.models import ChainEvent

from . import refs
from .directory import Directory
from .story import kind_name, task_statuses

MAX_NODES = 80
MAX_DEPTH = 3
OVERVIEW_TASKS = 8


@dataclass(frozen=True)
class Node:
    key: str
    kind: str  # "dataset", "task" or "result"
    label: str
    detail: str
    url: str
    state: str = ""


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # "input", "result" or "derived"


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    truncated: bool = False

    def add_edge(self, source: str, target: str, kind: str) -> None:
        """Links two nodes already in the graph (a node left out for room has no edges)."""
        edge = Edge(source, target, kind)
        if source in self.nodes and target in self.nodes and edge not in self.edges:
            self.edges.append(edge)

    def as_json(self) -> dict[str, object]:
        return {
            "nodes": [n.__dict__ for n in self.nodes.values()],
            "edges": [e.__dict__ for e in self.edges],
            "truncated": self.truncated,
        }


def dataset_key(dataset_id: str) -> str:
    return f"dataset:{dataset_id}"


def task_key(task_id: int) -> str:
    return f"task:{task_id}"


class _Builder:
    def __init__(self, session: Session, directory: Directory, root: str) -> None:
        self.session = session
        self.directory = directory
        self.root = root  # the explorer's URL path, which each node links into
        self.graph = Graph()

    def _room(self) -> bool:
        if len(self.graph.nodes) >= MAX_NODES:
            self.graph.truncated = True
            return False
        return True

    def _add(self, node: Node) -> bool:
        """Adds ``node``; True when it is new (and so still to be expanded)."""
        if node.key in self.graph.nodes or not self._room():
            return False
        self.graph.nodes[node.key] = node
        return True

    def _dataset(self, event: ChainEvent) -> Node:
        dataset_id = str(event.args["datasetId"])
        owner = self.directory.org_name(int(event.args["ownerOrg"]))
        return Node(
            dataset_key(dataset_id),
            "dataset",
            f"dataset {dataset_id[:10]}…",
            f"{owner} · L{event.args['level']} · {event.args['rowCount']} rows",
            f"{self.root}/datasets/{dataset_id}",
        )

    def expand_tasks(self, task_ids: list[int]) -> tuple[set[int], set[str]]:
        """Adds the tasks with their inputs and results; the new datasets to expand."""
        submitted = refs.events_about(
            self.session, "task", (str(t) for t in task_ids), ["TaskSubmitted"]
        )
        statuses = task_statuses(self.session, task_ids)
        inputs = refs.named_in(self.session, (e.tx_hash for e in submitted), "dataset")
        anchors = refs.events_about(
            self.session, "task", (str(t) for t in task_ids), ["ResultAnchored"]
        )
        registrations = {
            str(e.args["datasetId"]): e
            for e in refs.events_about(
                self.session,
                "dataset",
                (d for ids in inputs.values() for d in ids),
                ["DatasetRegistered"],
            )
        }
        new_datasets: set[str] = set()
        for event in submitted:
            task_id = int(event.args["taskId"])
            requester = self.directory.org_name(int(event.args["requesterOrg"]))
            status = statuses.get(task_id, "submitted")
            self._add(
                Node(
                    task_key(task_id),
                    "task",
                    f"task #{task_id} · {kind_name(Kind(int(event.args['kind'])))}",
                    f"{requester} · {status}",
                    f"{self.root}/tasks/{task_id}",
                    status,
                )
            )
            for dataset_id in inputs.get(event.tx_hash, []):
                registered = registrations.get(dataset_id)
                if registered is not None and self._add(self._dataset(registered)):
                    new_datasets.add(dataset_id)
                self.graph.add_edge(dataset_key(dataset_id), task_key(task_id), "input")
        for event in anchors:
            task_id, org = int(event.args["taskId"]), int(event.args["org"])
            key = f"result:{task_id}:{org}"
            self._add(
                Node(
                    key,
                    "result",
                    f"result of {self.directory.org_name(org)}",
                    f"digest {str(event.args['resultDigest'])[:10]}…",
                    f"{self.root}/verify?task={task_id}&org={org}",
                )
            )
            self.graph.add_edge(task_key(task_id), key, "result")
        return set(), new_datasets

    def expand_datasets(self, dataset_ids: set[str]) -> tuple[set[int], set[str]]:
        """Adds the datasets' parents, derived datasets and the tasks that used them."""
        registered = [
            e
            for e in refs.events_about(self.session, "dataset", dataset_ids, ["DatasetRegistered"])
            if str(e.args["datasetId"]) in dataset_ids
        ]
        parents = refs.named_in(self.session, (e.tx_hash for e in registered), "dataset")
        new_tasks: set[int] = set()
        new_datasets: set[str] = set()
        for event in registered:
            dataset_id = str(event.args["datasetId"])
            self._add(self._dataset(event))
            linked = [(p, dataset_id) for p in parents.get(event.tx_hash, [])]
            derivations = refs.calls_naming(self.session, "dataset", dataset_id, ["register"])
            children = refs.values_named(self.session, derivations, "dataset", "DatasetRegistered")
            linked += [(dataset_id, child) for child in children]
            others = {d for pair in linked for d in pair if dataset_key(d) not in self.graph.nodes}
            found = refs.events_about(self.session, "dataset", others, ["DatasetRegistered"])
            for other in found:
                if self._add(self._dataset(other)):
                    new_datasets.add(str(other.args["datasetId"]))
            for parent, child in linked:
                self.graph.add_edge(dataset_key(parent), dataset_key(child), "derived")
            uses = refs.calls_naming(self.session, "dataset", dataset_id, ["submitTask"])
            for task in refs.values_named(self.session, uses, "task", "TaskSubmitted"):
                if task_key(int(task)) not in self.graph.nodes:
                    new_tasks.add(int(task))
        return new_tasks, new_datasets

    def run(self, tasks: set[int], datasets: set[str]) -> Graph:
        for _ in range(MAX_DEPTH):
            if not (tasks or datasets) or not self._room():
                break
            found_tasks, found_datasets = set(), set()
            if tasks:
                more_tasks, more_datasets = self.expand_tasks(sorted(tasks))
                found_tasks |= more_tasks
                found_datasets |= more_datasets
            if datasets:
                more_tasks, more_datasets = self.expand_datasets(datasets)
                found_tasks |= more_tasks
                found_datasets |= more_datasets
            tasks = {t for t in found_tasks if task_key(t) not in self.graph.nodes}
            datasets = found_datasets
        if tasks:
            self.graph.truncated = True
        return self.graph


def provenance_graph(
    session: Session,
    directory: Directory,
    *,
    root: str,
    task_id: int | None = None,
    dataset_id: str | None = None,
) -> Graph:
    """The graph around ``task_id`` or ``dataset_id``, else around the newest tasks; each node
    links to its page in the explorer at ``root``."""
    builder = _Builder(session, directory, root)
    if task_id is not None:
        return builder.run({task_id}, set())
    if dataset_id is not None:
        return builder.run(set(), {dataset_id})
    newest = session.exec(
        select(ChainEvent)
        .where(ChainEvent.event == "TaskSubmitted")
        .order_by(col(ChainEvent.id).desc())
        .limit(OVERVIEW_TASKS)
    )
    return builder.run({int(e.args["taskId"]) for e in newest}, set())
