"""Extract every file, in a process pool or serially; results in path order.

Workers read the file themselves and hand back encoded facts (bytes), which
keeps what crosses process boundaries small and cheap to decode.  Whatever
order workers finish in, results are placed by index, so output never
depends on scheduling.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Callable, Iterable, Sequence

from ..facts import FileFacts, decode, empty_facts, encode
from ..ruleset import Ruleset
from . import extract_file

_worker_rules: Ruleset | None = None


def _init_worker(rules: Ruleset) -> None:
    global _worker_rules
    _worker_rules = rules
    import gc
    import signal

    gc.disable()  # extraction makes millions of short-lived nodes and tuples, never a cycle
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C does


def read_source(location: str) -> tuple[bytes | None, str]:
    try:
        with open(location, "rb") as handle:
            return handle.read(), ""
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"


def extract_one(path: str, data: bytes, rules: Ruleset) -> bytes:
    """Encoded facts of one file; any failure becomes an empty result with the reason."""
    try:
        facts = extract_file(path, data, rules)
    except RecursionError:
        facts = empty_facts(path, "nesting too deep to extract")
    except Exception as exc:  # a front-end bug must not cost the rest of the scan
        facts = empty_facts(path, f"extraction failed: {type(exc).__name__}: {exc}")
    return encode(facts)


def _task(job: tuple[int, str, str]) -> tuple[int, bytes]:
    index, path, location = job
    data, problem = read_source(location)
    if data is None:
        return index, encode(empty_facts(path, problem))
    assert _worker_rules is not None
    return index, extract_one(path, data, _worker_rules)


def extract_all(jobs: Sequence[tuple[str, str]], rules: Ruleset, processes: int,
                progress: Callable[[int], None] | None = None) -> list[FileFacts]:
    """Facts for each (path, location), in the order given."""
    results: list[FileFacts | None] = [None] * len(jobs)
    tasks = [(i, path, location) for i, (path, location) in enumerate(jobs)]
    for index, blob in _run(tasks, rules, processes):
        results[index] = decode(blob)  # while the workers go on with the next files
        if progress is not None:
            progress(1)
    return [facts for facts in results if facts is not None]


def _run(tasks: list[tuple[int, str, str]], rules: Ruleset, processes: int) -> Iterable[tuple[int, bytes]]:
    if processes <= 1 or len(tasks) < 2:
        _init_rules_inline(rules)
        for task in tasks:
            yield _task(task)
        return
    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    chunk = max(1, min(64, len(tasks) // (processes * 16) or 1))
    with context.Pool(processes, initializer=_init_worker, initargs=(rules,)) as pool:
        yield from pool.imap_unordered(_task, tasks, chunksize=chunk)


def _init_rules_inline(rules: Ruleset) -> None:
    global _worker_rules
    _worker_rules = rules
