"""Extract every file: from the fact cache where its content was seen before,
else in a process pool (or serially); results in the order given.

Each file is keyed by its content, or by the key the stamp index recorded
with its stamp.  When only a few files need reading for their keys, the
parent reads and hashes them, and the stored result of a whole scan can be
found before anything else is done; when many do (a cold scan), the workers
key them as they read them to extract.  Cached facts are read and decoded in
the parent; only the files the cache lacks are extracted, in the workers,
which hand back encoded facts (bytes: small and cheap to send and decode).
The parent stores them, a pack of many files at a time.  Whatever order
workers finish in, results are placed by index, so output never depends on
scheduling.
"""

from __future__ import annotations

import marshal
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..cache import Cache, PackCache, combined_key, content_key
from ..facts import FileFacts, decode, empty_facts, encode
from ..ruleset import Ruleset
from . import extract_file

FACTS = "facts"  # the cache's kind for per-file facts
STAMPS = "stamps"  # the cache's kind for stamp indexes


@dataclass(frozen=True)
class Source:
    """A file to extract: where to read it, or its content when given in memory."""

    path: str  # relative to the root, "/" separators
    location: str
    data: bytes | None = None
    stamp: tuple[int, ...] | None = None  # discover.SourceFile.stamp, for a file read from disk


@dataclass
class Keyed:
    """A source with its cache key, or the reason it cannot be read."""

    source: Source
    key: str = ""
    problem: str = ""


@dataclass
class ExtractStats:
    reused: int = 0  # facts read from the cache
    extracted: int = 0  # files parsed


def read_source(location: str) -> tuple[bytes | None, str]:
    try:
        with open(location, "rb") as handle:
            return handle.read(), ""
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"


def key_sources(sources: Sequence[Source], salted: bytes, known: dict[str, tuple] | None = None,
                defer_at: int | None = None) -> list[Keyed]:
    """Key each source by its path and content: read and hashed, or taken from
    `known` (path -> (stamp, key), see StampIndex) when its stamp is the same.
    When at least `defer_at` files on disk need reading, they are left unkeyed
    for `key_in_workers`, which reads each once instead of twice."""
    known = known or {}
    out = []
    unknown = []
    for source in sources:
        if source.data is None and source.stamp is not None:
            entry = known.get(source.path)
            if entry is not None and entry[0] == source.stamp:
                out.append(Keyed(source, key=entry[1]))
                continue
        out.append(Keyed(source))
        unknown.append(out[-1])
    defer = defer_at is not None and sum(1 for k in unknown if k.source.data is None) >= defer_at
    for item in unknown:
        source = item.source
        if defer and source.data is None:
            continue
        data, problem = (source.data, "") if source.data is not None else read_source(source.location)
        if data is None:
            item.problem = problem
        else:
            item.key = content_key(source.path, data, salted)
    return out


# A stamp is trusted only once the file has been left alone this long: its
# timestamps are coarser than a nanosecond, and a file written twice within
# one tick would otherwise keep the stamp of its first content.
SETTLED_NS = 2_000_000_000


class StampIndex:
    """The content keys of one tree's files by their stamps, so that a scan of a
    tree that did not change reads no source to key it.  Kept in the cache per
    root and configuration; a damaged index is an empty one."""

    def __init__(self, cache: Cache | None, root: str, salted: bytes):
        self.cache = cache
        self.key = combined_key([root], salted)
        self.known: dict[str, tuple] = {}
        if cache is not None:
            blob = cache.get(self.key)
            try:
                known = marshal.loads(blob) if blob is not None else {}
            except (ValueError, EOFError, TypeError):
                cache.discard(self.key)
                known = {}
            if isinstance(known, dict):  # only well-formed (stamp, key) entries are kept
                self.known = {path: entry for path, entry in known.items()
                              if type(entry) is tuple and len(entry) == 2 and type(entry[1]) is str}

    def update(self, keyed: Sequence[Keyed]) -> None:
        """Record the keys of the settled files just keyed, when that changes the
        index.  Files outside this scan (another path of the same tree)
        keep their entries."""
        if self.cache is None:
            return
        settled = time.time_ns() - SETTLED_NS
        known = dict(self.known)
        for k in keyed:
            source = k.source
            known.pop(source.path, None)
            if k.key and source.stamp is not None and source.data is None \
                    and max(source.stamp[1], source.stamp[2]) < settled:
                known[source.path] = (source.stamp, k.key)
        if known != self.known:
            self.cache.put(self.key, marshal.dumps(known))
            self.known = known


def extract_one(path: str, data: bytes, rules: Ruleset) -> bytes:
    """Encoded facts of one file; any failure becomes an empty result with the reason."""
    try:
        facts = extract_file(path, data, rules)
    except RecursionError:
        facts = empty_facts(path, "nesting too deep to extract")
    except Exception as exc:  # a front-end bug must not cost the rest of the scan
        facts = empty_facts(path, f"extraction failed: {type(exc).__name__}: {exc}")
    return encode(facts)


class _Worker:
    """What every task of one run shares; set once per process."""

    rules: Ruleset | None = None
    salted: bytes = b""
    known: frozenset[str] = frozenset()  # keys the fact cache holds, for the tasks that key


def _init_worker(rules: Ruleset, salted: bytes, known: frozenset[str], quiet_signals: bool) -> None:
    _Worker.rules, _Worker.salted, _Worker.known = rules, salted, known
    if quiet_signals:
        import gc
        import signal

        gc.disable()  # extraction makes millions of short-lived nodes and tuples, never a cycle
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C does
        # The parent ends its workers with SIGTERM (Pool.terminate); a worker ends at
        # once and says nothing, whatever handler it inherited from the parent.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _task(job: tuple[int, str, str, bytes | None, str]) -> tuple[int, str, bytes | None, bool]:
    """(index, key, encoded facts, whether they may be stored under the key).
    A job without a key is keyed here, and not extracted when the cache holds
    the key (no facts come back); an unreadable file comes back without a key."""
    index, path, location, data, key = job
    if data is None:
        data, problem = read_source(location)
        if data is None:
            return index, "", encode(empty_facts(path, problem)), False
    salted = _Worker.salted
    if not key:
        key = content_key(path, data, salted)
        if key in _Worker.known:
            return index, key, None, False
        store = True
    else:
        # Store only what was extracted from the content that was keyed: a file
        # edited since it was keyed must not leave facts under the old key.
        store = content_key(path, data, salted) == key
    assert _Worker.rules is not None
    return index, key, extract_one(path, data, _Worker.rules), store


# Extracted facts are stored a pack at a time, once this many bytes are waiting
# (and at the end): an interrupted scan keeps what earlier packs hold.
PACK_BYTES = 64 << 20


def key_in_workers(keyed: Sequence[Keyed], rules: Ruleset, processes: int, cache: PackCache | None,
                   salted: bytes, progress: Callable[[int], None] | None = None) -> dict[int, FileFacts]:
    """Key the sources `key_sources` left unkeyed, in the workers that read them
    anyway, extracting there those the cache lacks.  Fills in each one's key
    (or problem) and returns the facts extracted, by index (for extract_all)."""
    advance = progress or (lambda n: None)
    tasks = [(index, item.source.path, item.source.location, None, "")
             for index, item in enumerate(keyed) if not item.key and not item.problem]
    fresh: dict[int, FileFacts] = {}
    try:
        with closing(_run_and_store(tasks, rules, processes, cache, salted)) as done:
            for index, key, facts in done:
                keyed[index].key = key
                if facts is not None:
                    fresh[index] = facts
                    if not key:  # unreadable: the facts say why
                        keyed[index].problem = facts.problem
                    advance(1)
    finally:
        if cache is not None:
            cache.close()
    return fresh


def extract_all(keyed: Sequence[Keyed], rules: Ruleset, processes: int, cache: PackCache | None, salted: bytes,
                progress: Callable[[int], None] | None = None,
                fresh: dict[int, FileFacts] | None = None) -> tuple[list[FileFacts], ExtractStats]:
    """Facts for each keyed source, in the order given; `fresh` holds those
    key_in_workers extracted already."""
    advance = progress or (lambda n: None)
    try:
        return _extract_all(keyed, rules, processes, cache, salted, advance, fresh or {})
    finally:
        if cache is not None:
            cache.close()


def _extract_all(keyed: Sequence[Keyed], rules: Ruleset, processes: int, cache: PackCache | None, salted: bytes,
                 advance: Callable[[int], None], fresh: dict[int, FileFacts]) -> tuple[list[FileFacts], ExtractStats]:
    stats = ExtractStats()
    results: list[FileFacts | None] = [None] * len(keyed)
    tasks = []
    for index, item in enumerate(keyed):
        source = item.source
        facts = fresh.get(index)
        if facts is not None:
            results[index] = facts
            stats.extracted += not item.problem
            continue
        if item.problem:
            results[index] = empty_facts(source.path, item.problem)
            advance(1)
            continue
        facts = _cached(cache, item.key)
        if facts is not None and facts.path == source.path:
            results[index] = facts
            stats.reused += 1
            advance(1)
            continue
        tasks.append((index, source.path, source.location, source.data, item.key))
    stats.extracted += len(tasks)
    # closed at once on Ctrl-C too: the workers stop and what was extracted is stored
    with closing(_run_and_store(tasks, rules, processes, cache, salted)) as done:
        for index, _key, facts in done:
            results[index] = facts
            advance(1)
    return [facts for facts in results if facts is not None], stats


def _run_and_store(tasks: list, rules: Ruleset, processes: int, cache: PackCache | None,
                   salted: bytes) -> Iterable[tuple[int, str, FileFacts | None]]:
    """(index, key, facts or None when the cache holds them) of each task, as
    they come; what was extracted is stored, a pack at a time."""
    if not tasks:
        return
    known = frozenset(cache.index) if cache is not None and any(not task[4] for task in tasks) else frozenset()
    pending: list[tuple[str, bytes]] = []
    waiting = 0
    try:
        with closing(_run(tasks, rules, processes, salted, known)) as results:
            for index, key, blob, store in results:
                facts = decode(blob) if blob is not None else None  # while the workers go on with the next files
                if store and cache is not None:
                    pending.append((key, blob))
                    waiting += len(blob)
                    if waiting >= PACK_BYTES:
                        cache.put_many(pending)
                        pending, waiting = [], 0
                yield index, key, facts
    finally:
        if cache is not None:
            cache.put_many(pending)  # on Ctrl-C too: what was extracted is kept


def facts_of(item: Keyed, rules: Ruleset, cache: PackCache | None) -> tuple[FileFacts | None, bool]:
    """One keyed source's facts, from the cache or extracted here (and stored),
    and whether they were extracted; None when it cannot be read."""
    if item.problem or not item.key:
        return None, False
    facts = cached_facts(cache, item.key, item.source.path)
    if facts is not None:
        return facts, False
    source = item.source
    data = source.data if source.data is not None else read_source(source.location)[0]
    if data is None:
        return None, False
    blob = extract_one(source.path, data, rules)
    if cache is not None:
        cache.put_many([(item.key, blob)])
    return decode(blob), True


def cached_facts(cache: PackCache | None, key: str, path: str) -> FileFacts | None:
    """The facts the cache holds for `path` under `key`, or None."""
    facts = _cached(cache, key)
    return facts if facts is not None and facts.path == path else None


def _cached(cache: PackCache | None, key: str) -> FileFacts | None:
    if cache is None or not key:
        return None
    blob = cache.get(key)
    if blob is None:
        return None
    try:
        return decode(blob)
    except Exception:  # an entry this version did not write: rebuilt, never trusted
        cache.discard(key)
        return None


def _run(tasks: list, rules: Ruleset, processes: int, salted: bytes,
         known: frozenset[str]) -> Iterable[tuple[int, str, bytes | None, bool]]:
    if processes <= 1 or len(tasks) < 2:
        _init_worker(rules, salted, known, quiet_signals=False)
        for task in tasks:
            yield _task(task)
        return
    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    chunk = max(1, min(64, len(tasks) // (processes * 16) or 1))
    # Workers are forked with SIGTERM's default action, not the parent's handler:
    # one ended before its initializer runs must not unwind the parent's stack.
    with default_sigterm():
        pool = context.Pool(min(processes, len(tasks)), initializer=_init_worker,
                            initargs=(rules, salted, known, True))
    try:
        yield from pool.imap_unordered(_task, tasks, chunksize=chunk)
        pool.close()
    finally:
        pool.terminate()  # on Ctrl-C or an error too: no worker outlives the scan
        pool.join()


@contextmanager
def default_sigterm() -> Iterator[None]:
    """SIGTERM's default action for the duration (in the main thread; elsewhere
    signals cannot be set, and nothing changes)."""
    try:
        handler = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, handler)


def fact_cache(directory: Path | None) -> PackCache | None:
    return PackCache(directory, FACTS) if directory is not None else None


def cache_for(directory: Path | None, kind: str) -> Cache | None:
    return Cache(directory, kind) if directory is not None else None
