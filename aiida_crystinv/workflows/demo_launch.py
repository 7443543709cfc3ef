"""Running the demo from Python: :func:`launch_demo` runs (or submits) a
:class:`~aiida_crystinv.workflows.demo.DemoWorkChain`, reports each step as it finishes,
runs registered extra steps and writes the demo's files; :class:`DemoResult` holds the nodes
by role."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib
import time
import typing as t
from collections import Counter

from aiida import orm
from aiida.common.links import LinkType


from .demo import (
    DEMO_INVARIANTS,
    DemoWorkChain,
    count_planted,
    describe_generation,
    describe_import,
    describe_invariants,
    describe_neighbours,
)

__all__ = ["launch_demo", "demo_inputs", "DemoResult", "DemoStep", "register_demo_step", "DEMO_STEPS", "provenance_dot"]


# ---------------------------------------------------------------------------- running it from Python
@dataclasses.dataclass
class DemoResult:
    """What a demo made: nodes by role, timings (s), the near-duplicates, the planted pairs.

    Roles: ``workflow`` (the DemoWorkChain), ``generate``, ``file``, ``landscape``,
    ``import``, ``dataset``, ``amd_workflow``, ``amd``, ``pdd_workflow``, ``pdd``,
    ``knn_process``, ``knn``, ``duplicates_process``, ``duplicates``, plus whatever
    registered steps add.
    """

    n: int
    seed: int
    output: pathlib.Path | None
    nodes: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    duplicates: list[tuple[str, str, float]] = dataclasses.field(default_factory=list)
    planted: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    threshold: float = 0.05
    first_pk: int = 0
    wall_time: float = 0.0
    extra: dict[str, t.Any] = dataclasses.field(default_factory=dict)

    @property
    def found_planted(self) -> int:
        """How many planted near-duplicate pairs the search found."""
        return count_planted(self.duplicates, self.planted)[0]

    @property
    def other_found(self) -> int:
        """How many pairs found were not planted."""
        return count_planted(self.duplicates, self.planted)[1]

    def stored_node_counts(self) -> Counter:
        """Nodes stored since the demo started (PK >= :attr:`first_pk`), by type name."""
        builder = orm.QueryBuilder().append(orm.Node, filters={"id": {">=": self.first_pk}}, project=["node_type"])
        return Counter(row[0].rstrip(".").split(".")[-1] for row in builder.all())


@dataclasses.dataclass
class DemoStep:
    """A finished step: ``number`` of ``total``, its ``key``, its ``line`` and ``seconds``."""

    number: int
    total: int
    key: str
    line: str | None
    seconds: float


DemoStepFunction = t.Callable[[DemoResult], t.Optional[str]]
#: Extra steps run after the WorkChain: ``(title, function)``.
DEMO_STEPS: list[tuple[str, DemoStepFunction]] = []

#: The built-in steps: key -> link labels of the first and last sub-process of the step.
_STEPS = {
    "generate": ("generate_landscape", "generate_landscape"),
    "import": ("import_dataset", "import_dataset"),
    "amd": ("amd", "amd"),
    "pdd": ("pdd", "pdd"),
    "neighbours": ("compute_neighbours", "near_duplicates"),
}


def register_demo_step(title: str) -> t.Callable[[DemoStepFunction], DemoStepFunction]:
    """Decorator: run ``func(result) -> str | None`` as an extra step after the demo."""

    def decorator(func: DemoStepFunction) -> DemoStepFunction:
        DEMO_STEPS.append((title, func))
        return func

    return decorator


def _max_pk() -> int:
    builder = orm.QueryBuilder().append(orm.Node, project=["id"]).order_by({orm.Node: {"id": "desc"}}).limit(1)
    rows = builder.all()
    return int(rows[0][0]) if rows else 0


def _called(node: orm.ProcessNode) -> dict[str, orm.ProcessNode]:
    links = node.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all()
    return {link.link_label: link.node for link in links}


class _StepTracker:
    """Turns the finished sub-processes of a DemoWorkChain into :class:`DemoStep` reports, in order."""

    def __init__(self, result: DemoResult, total: int, on_step: t.Callable[[DemoStep], None] | None):
        self.result, self.total, self.on_step = result, total, on_step
        self.keys = list(_STEPS)
        self.done = 0

    def poll(self, workflow: orm.ProcessNode) -> None:
        if self.done == len(self.keys):
            return
        called = _called(workflow)
        while self.done < len(self.keys):
            key = self.keys[self.done]
            first, last = (called.get(label) for label in _STEPS[key])
            if first is None or last is None or not last.is_finished_ok:
                return
            seconds = (last.mtime - first.ctime).total_seconds()
            self.result.timings[key] = seconds
            line = self._collect(key, first, last)
            self.done += 1
            if self.on_step is not None:
                self.on_step(DemoStep(self.done, self.total, key, line, seconds))

    def _collect(self, key: str, first: orm.ProcessNode, last: orm.ProcessNode) -> str:
        result, nodes = self.result, self.result.nodes
        if key == "generate":
            nodes.update({"generate": first, "file": first.outputs.file, "landscape": first.outputs.landscape})
            info = first.outputs.landscape.get_dict()
            result.planted = [tuple(p) for p in info["planted"]]
            return describe_generation(info)
        if key == "import":
            nodes.update({"import": first, "dataset": first.outputs.dataset})
            return describe_import(first.outputs.dataset, first)
        if key in DEMO_INVARIANTS:
            nodes.update({key: first.outputs.invariants, f"{key}_workflow": first})
            return describe_invariants(key, first)
        knn = first.outputs.distances
        nodes.update({"knn": knn, "knn_process": first, "duplicates": last.outputs.pairs, "duplicates_process": last})
        result.duplicates = [(a, b, float(d)) for a, b, d in last.outputs.pairs.get_list()]
        return describe_neighbours(knn, first, result.duplicates, result.planted, result.threshold)


def _run_here(
    inputs: dict[str, t.Any],
    tracker: _StepTracker,
    poll_interval: float = 0.1,
    interrupted: t.Callable[[], bool] | None = None,
) -> orm.ProcessNode:
    """Run the DemoWorkChain in this process; report steps as their sub-processes finish.
    ``interrupted()`` is asked between steps: when true, the run stops with ``KeyboardInterrupt``."""
    from aiida.engine import run_get_node
    from aiida.engine import utils as engine_utils

    from .._runner import in_process_runner

    runner = in_process_runner()
    if runner.loop.is_running():  # called from inside a running process: no live reports
        _, node = run_get_node(DemoWorkChain, **inputs)
        tracker.poll(node)
        return node
    with engine_utils.loop_scope(runner.loop):
        process = runner.instantiate_process(DemoWorkChain, **inputs)

        async def drive() -> None:
            task = asyncio.ensure_future(process.step_until_terminated())
            while not task.done():
                await asyncio.sleep(poll_interval)
                if interrupted is not None and interrupted():
                    task.cancel()
                    raise KeyboardInterrupt
                tracker.poll(process.node)
            await task

        runner.loop.run_until_complete(drive())
    tracker.poll(process.node)
    return process.node


def demo_inputs(
    n: int = 200, seed: int = 0, k: int = 5, threshold: float = 0.05, chunk_size: int | None = None
) -> dict[str, t.Any]:
    """The inputs of a :class:`DemoWorkChain` (unstored nodes)."""
    inputs: dict[str, t.Any] = {"n": orm.Int(n), "seed": orm.Int(seed), "k": orm.Int(k), "threshold": orm.Float(threshold)}
    if chunk_size is not None:
        inputs["chunk_size"] = orm.Int(chunk_size)
    return inputs


def launch_demo(
    n: int = 200,
    seed: int = 0,
    k: int = 5,
    threshold: float = 0.05,
    chunk_size: int | None = None,
    *,
    output: pathlib.Path | str | None = None,
    submit: bool = False,
    on_step: t.Callable[[DemoStep], None] | None = None,
    interrupted: t.Callable[[], bool] | None = None,
) -> tuple[DemoResult | None, orm.ProcessNode]:
    """Run (or submit to the daemon) a :class:`DemoWorkChain`; needs a loaded profile.

    Run here, each step is reported to ``on_step`` when it finishes, then the registered
    extra steps (:data:`DEMO_STEPS`) run, and with ``output`` the folder gets the generated
    JSON file, ``demo.json`` (PKs, timings, duplicates) and ``provenance.dot`` (the graph
    in Graphviz DOT text).

    Args:
        n: number of structures of the synthetic landscape (>= 2).
        seed: its random seed (>= 0).
        k: neighbours per structure in the kNN graph (lowered to ``n - 1``).
        threshold: PDD-EMD (Angstrom) at or under which two structures are near-duplicates.
        chunk_size: structures per invariants chunk (default: ``n / 4``, at least 50).
        output: folder to keep the files in (created if needed; not with ``submit``).
        submit: hand the WorkChain to the daemon and return at once.
        on_step: called with a :class:`DemoStep` as each step finishes.
        interrupted: asked between steps of the run here; when it returns True the run
            stops with ``KeyboardInterrupt`` (the command line passes whether a Ctrl-C
            arrived that Python could not raise where it landed).

    Returns:
        ``(DemoResult, node)`` when run (``(None, node)`` when the WorkChain failed: see
        ``node.exit_status`` / ``exit_message``); ``(None, node)`` when submitted.

    Raises:
        ValueError: an input refused by its port (e.g. ``n < 2``, a NaN threshold), before
            any node is stored; ``output`` with ``submit``.
    """
    inputs = demo_inputs(n, seed, k, threshold, chunk_size)
    if submit:
        if output is not None:
            raise ValueError("output files are written by the launching process: not with submit=True")
        from aiida.engine import submit as submit_process

        return None, submit_process(DemoWorkChain, **inputs)

    start = time.perf_counter()
    result = DemoResult(n=n, seed=seed, output=pathlib.Path(output) if output else None, threshold=float(threshold))
    result.first_pk = _max_pk() + 1
    tracker = _StepTracker(result, len(_STEPS) + len(DEMO_STEPS), on_step)
    node = _run_here(inputs, tracker, interrupted=interrupted)
    if not node.is_finished_ok:
        return None, node
    result.nodes = {"workflow": node, **result.nodes}

    for number, (title, func) in enumerate(DEMO_STEPS, start=len(_STEPS) + 1):
        t0 = time.perf_counter()
        line = func(result)
        result.timings[title] = time.perf_counter() - t0
        if line and on_step is not None:
            on_step(DemoStep(number, tracker.total, title, line, result.timings[title]))

    result.wall_time = time.perf_counter() - start
    if result.output is not None:
        write_demo_files(result)
    return result, node


def write_demo_files(result: DemoResult) -> None:
    """Write the generated JSON file, ``demo.json`` and ``provenance.dot`` into ``result.output``."""
    folder = result.output
    assert folder is not None
    folder.mkdir(parents=True, exist_ok=True)
    file_node = result.nodes["file"]
    (folder / file_node.filename).write_bytes(file_node.get_content(mode="rb"))
    dot = folder / "provenance.dot"
    dot.write_text(provenance_dot(file_node))
    result.extra["provenance_dot"] = dot
    summary = {
        "n": result.n,
        "seed": result.seed,
        "nodes": {role: {"pk": node.pk, "uuid": node.uuid, "type": type(node).__name__} for role, node in result.nodes.items()},
        "timings_s": result.timings,
        "wall_time_s": result.wall_time,
        "duplicates": result.duplicates,
    }
    (folder / "demo.json").write_text(json.dumps(summary, indent=2))


def provenance_dot(root: orm.Node) -> str:
    """The provenance graph downstream of ``root`` in Graphviz DOT text (no Graphviz needed to write it).

    Render it with ``dot -Tpdf provenance.dot -o provenance.pdf`` or any DOT viewer.
    """
    from aiida.tools.visualization import Graph

    graph = Graph(graph_attr={"rankdir": "TB"})
    graph.recurse_descendants(root, include_process_inputs=True)
    return graph.graphviz.source
