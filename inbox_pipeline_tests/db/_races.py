"""Run a race between real processes (each with its own engine) and collect what each got."""

from __future__ import annotations

import multiprocessing

# Fresh processes, each with its own engine: a fork server imports the database code once, then
# forks a clean copy of itself per worker (spawning imports it again in each of the eight).
_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(["inbox_pipeline_tests.db._race_workers", "inbox_pipeline.db.engine",
                             "inbox_pipeline.db.ledger", "inbox_pipeline.db.quota", "inbox_pipeline.db.intake",
                             "inbox_pipeline.db.queue"])


def run_race(target, url: str, args_for: list, *, timeout: float = 120) -> dict[int, object]:
    """Start ``target(url, start, results, index, arg)`` per arg, all released at once; their outcomes by index."""
    ctx = _CTX
    start = ctx.Barrier(len(args_for))
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(url, start, results, i, arg)) for i, arg in enumerate(args_for)]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=timeout) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    errors = [o for o in outcomes.values() if isinstance(o, str) and o.startswith("error")]
    assert errors == []
    return outcomes
