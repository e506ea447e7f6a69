"""The scan: discover the dataset, decode each image once, measure it with every image check (in a process pool),
cache the metrics, then judge every record and run the dataset-level checks.

Example::

    result = scan(Path("train"), ScanSettings(workers=2))
    print(result.analysed, result.cached, result.counts())
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.checks import checks_version, dataset_checks, image_checks
from curator.checks.base import CheckContext
from curator.dataset.discover import Dataset, Item, discover
from curator.dataset.workspace import Workspace, WorkspaceError
from curator.findings import Finding, Severity
from curator.images.loader import DEFAULT_MAX_PIXELS, LoadError, load_view
from curator.progress import ProgressCallback, progress_bar
from curator.scan.cache import FileKey, MetricsCache
from curator.scan.results import ItemRecord, ScanResult, ScanSettings

#: Bumped when the loader's own metrics change (part of the cache key with the checks' version).
LOADER_VERSION = 6
#: Loader parameters, overridable through ``ScanSettings.params["loader"]``.
LOADER_DEFAULTS: dict[str, Any] = {
    "max_pixels": DEFAULT_MAX_PIXELS,  # decompression-bomb limit on the declared size
    "timeout_s": 60.0,  # per-file guard: a file that takes longer to decode and measure becomes a finding
}
#: Below this many images to analyse the scan runs in-process (a pool costs more than it saves).
POOL_MIN_ITEMS = 8


@dataclass(frozen=True)
class _Task:
    """One file to analyse, as sent to a worker (plain data, picklable)."""

    path: Path
    rel: str
    check_params: dict[str, dict[str, Any]]
    max_pixels: int
    timeout_s: float


def scan(
    root: Path,
    settings: ScanSettings | None = None,
    *,
    dataset: Dataset | None = None,
    on_progress: ProgressCallback | None = None,
) -> ScanResult:
    """Scan the dataset at ``root``: every image measured once (cached), judged, then the dataset-level checks.

    ``dataset`` skips discovery when the caller already has it; ``on_progress(done, total)`` is called as images are
    analysed (the TUI uses it). The scan never raises for a bad image: it becomes a finding on its record.
    Raises ``ValueError`` for invalid ``settings`` (see :meth:`ScanSettings.validate`).
    """
    settings = settings or ScanSettings()
    settings.validate()  # a bad setting is one ValueError now, not a failure in every worker later
    started = time.perf_counter()
    if dataset is None:
        dataset = discover(Path(root), settings.reg_root, settings.caption_extension)
    records, extra_findings, analysed, cached = _measure_all(dataset, settings, on_progress)
    by_rel = {r.item.rel: r for r in records}
    dataset_wide: list[Finding] = []
    for finding in dataset.findings:  # a discovery finding about one image belongs to that image's record
        target = by_rel.get(finding.path) if finding.path else None
        (target.findings if target else dataset_wide).append(finding)
    result = ScanResult(
        dataset=dataset,
        settings=settings,
        records=records,
        findings=dataset_wide + extra_findings,
        analysed=analysed,
        cached=cached,
    )
    _judge(result)
    result.seconds = time.perf_counter() - started
    return result


def item_sizes(result: ScanResult) -> dict[str, tuple[int, int]]:
    """``rel -> (width, height)`` of every decoded item (what the plan needs for buckets)."""
    return {r.item.rel: (r.width, r.height) for r in result.records if r.decoded}


def cache_version() -> str:
    """The version part of the cache key: the checks' digest and the loader's version."""
    return f"{checks_version()}-L{LOADER_VERSION}"


# --- measuring ------------------------------------------------------------------------------------------------


def _measure_all(
    dataset: Dataset, settings: ScanSettings, on_progress: ProgressCallback | None
) -> tuple[list[ItemRecord], list[Finding], int, int]:
    loader = settings.check_params("loader", LOADER_DEFAULTS)
    params = {c.name: settings.check_params(c.name, c.defaults) for c in image_checks()}
    version = cache_version()
    cache, findings = _open_cache(dataset.root, settings)
    payloads: dict[str, dict[str, Any]] = {}
    keys: dict[str, FileKey] = {}
    for item in dataset.items:
        key = _file_key(item.path)
        if key is None:
            payloads[item.rel] = _error_payload(
                LoadError("unreadable", "Cannot stat the file (missing or broken link)")
            )
            continue
        keys[item.rel] = key
    hits = _cached(cache, keys, version)
    payloads.update(hits)
    todo = [
        _Task(item.path, item.rel, params, int(loader["max_pixels"]), float(loader["timeout_s"]))
        for item in dataset.items
        if item.rel in keys and item.rel not in hits
    ]
    cached = len(dataset.items) - len(todo)
    fresh: dict[str, dict[str, Any]] = {}
    try:
        _run_tasks(todo, settings, on_progress, fresh)
    except BaseException:
        # Ctrl-C (or any abort): keep what was decoded, so the next scan resumes instead of starting over; a
        # failure payload is left out, since a worker killed by the interrupt is not a corrupt file
        _save_cache(cache, {rel: p for rel, p in fresh.items() if p.get("decoded")}, keys, version)
        raise
    payloads.update(fresh)
    findings.extend(_save_cache(cache, fresh, keys, version))
    fresh.clear()
    # each payload is let go as its record is made: the records are never held twice
    records = [_record(item, payloads.pop(item.rel)) for item in dataset.items]
    return records, findings, len(todo), cached


def _cached(cache: MetricsCache | None, keys: dict[str, FileKey], version: str) -> dict[str, dict[str, Any]]:
    """The cached payloads of the files in ``keys`` still valid; none when the cache cannot be read."""
    if cache is None:
        return {}
    try:
        return cache.get_many(keys, version)
    except sqlite3.Error:
        return {}  # an unreadable cache only costs time: everything is analysed again


def _save_cache(
    cache: MetricsCache | None, fresh: dict[str, dict[str, Any]], keys: dict[str, FileKey], version: str
) -> list[Finding]:
    """Store the fresh payloads and close the cache; a finding instead of an exception when that fails."""
    if cache is None:
        return []
    try:
        cache.put_many([(rel, keys[rel], version, p) for rel, p in fresh.items() if rel in keys])
    except sqlite3.Error as exc:
        return [_cache_finding(f"Could not write the scan cache: {exc}")]
    finally:
        cache.close()
    return []


def _open_cache(root: Path, settings: ScanSettings) -> tuple[MetricsCache | None, list[Finding]]:
    workspace = Workspace.for_dataset(root, settings.workspace)
    try:
        workspace.ensure()
        return MetricsCache(workspace.cache_db), []
    except WorkspaceError as exc:
        return None, [_cache_finding(f"No scan cache: {exc}")]
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return None, [
            _cache_finding(f"No scan cache ({reason} at {workspace.root}); pass --workspace DIR to keep one")
        ]


def _cache_finding(message: str) -> Finding:
    return Finding("cache_unavailable", Severity.INFO, message, {})


def _file_key(path: Path) -> FileKey | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return FileKey(st.st_size, st.st_mtime_ns)


def _record(item: Item, payload: dict[str, Any]) -> ItemRecord:
    return ItemRecord(
        item=item,
        metrics=payload.get("metrics", {}),  # the payload's own: it is let go once its record is made
        findings=[Finding.from_json(f).with_path(item.rel) for f in payload.get("findings", [])],
        width=int(payload.get("width", 0)),
        height=int(payload.get("height", 0)),
        decoded=bool(payload.get("decoded", False)),
    )


def _shared_names(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with its metric names interned: one string per name across all records, where a payload from a
    worker comes unpickled with its own (a few KB per image at 20,000 images)."""
    metrics = payload.get("metrics")
    if metrics:
        payload["metrics"] = {sys.intern(k): v for k, v in metrics.items()}
    return payload


def _run_tasks(
    tasks: list[_Task],
    settings: ScanSettings,
    on_progress: ProgressCallback | None,
    results: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Analyse every task into ``results`` (filled as files finish, so an interrupted run keeps what is done);
    in-process for few images, else in a process pool that survives a crashing decoder."""
    if not tasks:
        return results
    with progress_bar("scanning", len(tasks), settings.progress, on_progress) as advance:
        if settings.workers <= 1 or len(tasks) < POOL_MIN_ITEMS:
            for task in tasks:
                results[task.rel] = analyse_file(task)
                advance()
            return results
        crashed = _run_pool(tasks, min(settings.workers, len(tasks)), results, advance)
        # A worker died (a decoder crash or the OOM killer): retry the unfinished files one at a time, so the
        # one that kills its worker is identified and every other file still gets analysed.
        for task in crashed:
            crashed_again = _run_pool([task], 1, results, advance)
            for lost in crashed_again:
                results[lost.rel] = _error_payload(
                    LoadError("corrupt", "The decoder crashed on this file", {"reason": "decoder_crash"})
                )
                advance()
    return results


def _run_pool(
    tasks: list[_Task], workers: int, results: dict[str, dict[str, Any]], advance: Callable[[], None]
) -> list[_Task]:
    """Run ``tasks`` in a pool; store results; return the tasks lost to a broken pool."""
    lost: list[_Task] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
        futures: list[tuple[_Task, Future[dict[str, Any]]]] = [
            (t, pool.submit(analyse_file, t)) for t in tasks
        ]
        try:
            for task, future in futures:
                try:
                    results[task.rel] = _shared_names(future.result())
                    advance()
                except BrokenProcessPool:
                    lost.append(task)
                except Exception as exc:  # pickling or an unexpected worker error: one file, not the scan
                    results[task.rel] = _error_payload(LoadError("corrupt", f"Analysis failed: {exc}", {}))
                    advance()
        except BaseException:  # Ctrl-C: drop the queued files now instead of analysing them all first
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return lost


def _pool_context() -> multiprocessing.context.BaseContext:
    """The platform default, except from a non-main thread (the TUI's workers): forking a threaded process can
    deadlock, so start workers from a clean server process there."""
    if (
        threading.current_thread() is not threading.main_thread()
        and "forkserver" in multiprocessing.get_all_start_methods()
    ):
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context()


# --- one file (runs in a worker) ------------------------------------------------------------------------------


def analyse_file(task: _Task) -> dict[str, Any]:
    """Decode one file and measure it with every image check; a JSON-able payload, never an exception."""
    try:
        with _time_limit(task.timeout_s):
            view = load_view(task.path, max_pixels=task.max_pixels)
            metrics: dict[str, Any] = {
                "file_size": view.file_size,
                "sha256": view.sha256,
                "pixel_fingerprint": view.pixel_fingerprint,
                "format": view.format,
                "mode": view.mode,
                "frames": view.frames,
                "draft_scale": view.draft_scale,
                "exif_orientation": view.orientation,  # export reads it: Kohya never applies it
            }
            failures: dict[str, str] = {}
            for check in image_checks():
                try:
                    metrics.update(check.measure(view, task.check_params.get(check.name, check.defaults)))
                except _Timeout:
                    raise
                except Exception as exc:  # a check's bug must not lose the image's other metrics
                    failures[check.name] = f"{type(exc).__name__}: {exc}"[:200]
            if failures:
                metrics["check_failures"] = failures
    except LoadError as err:
        return _error_payload(err)
    except _Timeout:
        return _error_payload(
            LoadError(
                "decode_timeout",
                f"Decoding and measuring took over {task.timeout_s:g} s; skipped",
                {"timeout_s": task.timeout_s},
            )
        )
    except MemoryError:
        return _error_payload(
            LoadError("decompression_bomb", "Out of memory while analysing", {"reason": "memory"})
        )
    except Exception as exc:  # last resort: any other failure is about this file only
        return _error_payload(LoadError("corrupt", f"Cannot analyse: {type(exc).__name__}: {exc}"[:200], {}))
    return {"decoded": True, "width": view.width, "height": view.height, "metrics": metrics, "findings": []}


def _error_payload(err: LoadError) -> dict[str, Any]:
    finding = Finding(err.code, Severity.ERROR, err.message, err.evidence)
    return {"decoded": False, "width": 0, "height": 0, "metrics": {}, "findings": [finding.to_json()]}


class _Timeout(Exception):
    """Raised by the per-file alarm."""


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """SIGALRM-based guard; active only where signals work (Unix, main thread: pool workers and the CLI)."""
    usable = (
        seconds > 0 and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- judging --------------------------------------------------------------------------------------------------


def _judge(result: ScanResult) -> None:
    """Per-image judges on decoded records, then dataset checks; findings attached where they belong."""
    settings = result.settings
    decoded_train = [r for r in result.records if r.decoded and not r.item.is_reg]
    cache_db = Workspace.for_dataset(result.dataset.root, settings.workspace).cache_db
    context = CheckContext(
        settings=settings, records=decoded_train, cache_db=cache_db if cache_db.is_file() else None
    )
    for check in image_checks():
        params = settings.check_params(check.name, check.defaults)
        for record in result.records:
            if not record.decoded:
                continue
            try:
                record.findings.extend(
                    f.with_path(record.item.rel) for f in check.judge(record, params, context)
                )
            except Exception as exc:
                record.findings.append(_check_error(check.name, exc, record.item.rel))
    by_rel = {r.item.rel: r for r in result.records}
    for dcheck in dataset_checks():
        params = settings.check_params(dcheck.name, dcheck.defaults)
        try:
            found = dcheck.run(result.records, params, context)
        except Exception as exc:
            result.findings.append(_check_error(dcheck.name, exc, None))
            continue
        for finding in found:
            target = by_rel.get(finding.path) if finding.path else None
            (target.findings if target else result.findings).append(finding)


def _check_error(name: str, exc: Exception, path: str | None) -> Finding:
    return Finding(
        "check_error",
        Severity.INFO,
        f"Check '{name}' failed: {type(exc).__name__}: {exc}"[:200],
        {"check": name},
        path,
    )
