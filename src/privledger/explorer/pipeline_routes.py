"""The pipelines run from this node (F25): each job's DAG of steps, drawn with every step's state
(a task step's from its task on chain), the datasets its steps derived, and links to the tasks.
JSON twins under /explorer/api."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlmodel import Session

from privledger.api.deps import NodeDep
from privledger.node import pipelines
from privledger.node.context import NodeContext
from privledger.store.models import Pipeline
from privledger.wire.pipelines import PipelineOut

from .graph import render_svg
from .provenance import Graph, Node, dataset_key
from .web import PREFIX, Auditor, ExplorerRoute, PageNotFound, explorer_root, page, whole_number

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ExplorerRoute)


def pipeline_graph(pipeline: PipelineOut, root: str) -> Graph:
    """Steps as nodes in the order they wait for each other; a step's derived datasets after it,
    linked to the steps that come after it."""
    graph = Graph()
    for step in pipeline.steps:
        what = step.protocol or ("model" if step.kind == "model" else "task")
        detail = f"{what} · {step.state}" + (f" · task {step.task_id}" if step.task_id else "")
        url = f"{root}/tasks/{step.task_id}" if step.task_id else f"{root}/pipelines"
        if step.model_id:
            url = f"{root}/datasets/{step.model_id}"
        graph.nodes[step.id] = Node(step.id, "task", step.id, detail, url, step.state)
        for item in step.derived:
            key = dataset_key(item.dataset_id)
            graph.nodes[key] = Node(
                key,
                "dataset",
                f"{item.org} aligned",
                f"{item.row_count} rows · {item.dataset_id[:10]}…",
                f"{root}/datasets/{item.dataset_id}",
            )
    for step in pipeline.steps:
        for before in step.after:
            graph.add_edge(before, step.id, "input")
        for item in step.derived:
            graph.add_edge(step.id, dataset_key(item.dataset_id), "derived")
    return graph


def _pipeline(node: NodeContext, text: str) -> PipelineOut:
    pipeline_id = whole_number(text, "pipeline id")
    with Session(node.engine) as session:
        row = session.get(Pipeline, pipeline_id)
        if row is None:
            raise PageNotFound(f"pipeline {pipeline_id} was not run from this node")
        return pipelines.view(node, row)


@router.get("/pipelines")
def pipelines_page(request: Request, node: NodeDep, auditor: Auditor) -> Response:
    with Session(node.engine) as session:
        rows = [pipelines.view(node, row) for row in pipelines.pipelines(session)]
    return page(request, "pipelines.html", {"rows": rows}, viewer=auditor)


@router.get("/pipelines/{pipeline_id}")
def pipeline_page(request: Request, pipeline_id: str, node: NodeDep, auditor: Auditor) -> Response:
    pipeline = _pipeline(node, pipeline_id)
    svg = render_svg(pipeline_graph(pipeline, explorer_root(request)), label="pipeline DAG")
    return page(request, "pipeline.html", {"p": pipeline, "svg": svg}, viewer=auditor)


@router.get("/api/pipelines/{pipeline_id}")
def pipeline_json(
    request: Request, pipeline_id: str, node: NodeDep, _auditor: Auditor
) -> dict[str, Any]:
    pipeline = _pipeline(node, pipeline_id)
    graph = pipeline_graph(pipeline, explorer_root(request))
    return {**pipeline.model_dump(mode="json", by_alias=True), "graph": graph.as_json()}
