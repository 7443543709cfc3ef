"""Running WorkChains in this Python process without waiting on the poll interval.

``aiida.engine.run_get_node`` makes a fresh runner that checks on the sub-processes a
WorkChain is waiting for every ``runner.poll.interval`` seconds of the profile (60 by
default; ``verdi presto`` profiles use 1), so a chunked WorkChain run in-process can sit
idle for up to a minute per step. The runner here polls every ``poll_interval`` seconds
and has no communicator (no broker needed; such runs cannot be paused or killed with
``verdi process``, Ctrl-C still stops them). The profile's configuration is not touched.
"""

from __future__ import annotations

import typing as t

__all__ = ("in_process_runner", "run_get_node_promptly")

_IN_PROCESS_RUNNER: t.Any = None


def in_process_runner(poll_interval: float = 0.05) -> t.Any:
    """A runner of the loaded profile that polls every ``poll_interval`` seconds (one per
    profile and interval, created on first use)."""
    from aiida.manage import get_manager

    global _IN_PROCESS_RUNNER  # noqa: PLW0603
    profile = get_manager().get_profile()
    key = (profile.name if profile else None, poll_interval)
    stale = _IN_PROCESS_RUNNER is None or _IN_PROCESS_RUNNER[0] != key
    # a runner closed, or whose event loop something else closed (an interrupted run), is replaced
    if stale or _IN_PROCESS_RUNNER[1].is_closed() or _IN_PROCESS_RUNNER[1].loop.is_closed():
        runner = get_manager().create_runner(communicator=None, poll_interval=poll_interval)
        _IN_PROCESS_RUNNER = (key, runner)
    return _IN_PROCESS_RUNNER[1]


def run_get_node_promptly(process: t.Any, **inputs: t.Any) -> tuple[dict[str, t.Any], t.Any]:
    """``aiida.engine.run_get_node(process, **inputs)`` on :func:`in_process_runner`.

    Called from inside a running process (whose event loop is busy), it falls back to
    aiida's own ``run_get_node``.
    """
    runner = in_process_runner()
    if runner.loop.is_running():
        from aiida.engine import run_get_node

        return run_get_node(process, **inputs)
    return runner.run_get_node(process, **inputs)
