"""Worker processes for samples, with per-sample timeouts and replacement of dead workers.

Each worker runs ``run_sample`` on one sample at a time and reports the stage it is in.
A sample that takes longer than the timeout is abandoned: its worker is killed, the
sample gets an error record naming the stage, and a fresh worker takes the slot. A
worker that dies (a crash in a decoder, the OOM killer) is handled the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from mmprep.config import from_dict, to_dict
from mmprep.errors import MmprepError
from mmprep.extract import ExtractConfig, Outcome, failure_record, run_sample
from mmprep.sources import Sample

_PRELOAD = ["mmprep.executors.pool", "mmprep.extract", "av", "numpy", "torch",
            "torchaudio.compliance.kaldi", "tokenizers", "PIL.Image"]


def _context():
    if sys.platform.startswith("linux"):
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return mp.get_context("spawn")


@contextlib.contextmanager
def _unimportable_main_hidden():
    """Workers re-import ``__main__`` by path; a script read from stdin has no such path
    (``<stdin>``), so hide it while starting workers (their code lives in mmprep)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    hide = path is not None and getattr(main, "__spec__", None) is None and (
        not os.path.exists(path))
    if hide:
        del main.__file__
    try:
        yield
    finally:
        if hide:
            main.__file__ = path


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no orphaned decoders)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _worker_main(conn, cfg_data: dict[str, Any], torch_threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    _die_with_parent()
    try:
        import torch

        torch.set_num_threads(torch_threads)
    except ImportError:  # pragma: no cover
        pass
    cfg = from_dict(ExtractConfig, cfg_data)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        task_id, sample_data = msg
        sample = Sample.from_dict(sample_data)

        def on_stage(stage: str, task_id=task_id) -> None:
            conn.send(("stage", task_id, stage))

        try:
            outcome = run_sample(sample, cfg, on_stage)
        except Exception as exc:  # noqa: BLE001 - a bug must not lose the sample
            outcome = Outcome(None, error=failure_record(
                sample, "internal", type(exc).__name__, f"unexpected error: {exc}"))
        try:
            conn.send(("done", task_id, outcome))
        except (BrokenPipeError, OSError):
            return


@dataclass
class _Worker:
    proc: Any
    conn: Any
    task: Any = None  # (task_id, Sample) while busy
    started: float = 0.0
    stage: str = "start"


class SamplePool:
    """``workers`` processes running ``run_sample``; see the module docs."""

    def __init__(self, cfg: ExtractConfig, workers: int, *, sample_timeout: float | None = None,
                 torch_threads: int = 1):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.ctx = _context()
        self.cfg_data = to_dict(cfg)
        self.timeout = sample_timeout if sample_timeout and sample_timeout > 0 else None
        self.torch_threads = torch_threads
        self.workers = [self._spawn() for _ in range(workers)]
        self.replaced = 0
        self.start_failures = 0

    def _spawn(self) -> _Worker:
        parent, child = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(target=_worker_main, args=(child, self.cfg_data,
                                                           self.torch_threads), daemon=True)
        with _unimportable_main_hidden():
            proc.start()
        child.close()
        return _Worker(proc, parent)

    def idle(self) -> list[_Worker]:
        return [w for w in self.workers if w.task is None]

    def busy(self) -> int:
        return sum(1 for w in self.workers if w.task is not None)

    def busy_pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers if w.task is not None]

    def submit(self, worker: _Worker, task_id: Any, sample: Sample) -> None:
        worker.conn.send((task_id, sample.to_dict()))
        worker.task = (task_id, sample)
        worker.started = time.monotonic()
        worker.stage = "start"

    def _replace(self, worker: _Worker) -> None:
        try:
            worker.proc.kill()
        except (OSError, ValueError):
            pass
        worker.proc.join(timeout=5)
        worker.conn.close()
        self.workers[self.workers.index(worker)] = self._spawn()
        self.replaced += 1

    def _fail(self, worker: _Worker, type_name: str, message: str) -> tuple[Any, Outcome]:
        task_id, sample = worker.task
        if worker.stage == "start" and type_name == "WorkerCrash":
            # Died before starting the sample: a broken worker, not a bad sample.
            self.start_failures += 1
            if self.start_failures >= 3:
                self.terminate()
                raise MmprepError(f"worker processes die before processing anything ({message}); "
                                  "run with --workers 0 to see the error in this process")
        else:
            self.start_failures = 0
        record = failure_record(sample, worker.stage, type_name, message)
        self._replace(worker)
        return task_id, Outcome(None, error=record)

    def poll(self, timeout: float = 0.5) -> list[tuple[Any, Outcome]]:
        """Wait up to ``timeout`` s; return the (task_id, outcome) pairs that finished."""
        busy = [w for w in self.workers if w.task is not None]
        if not busy:
            return []
        now = time.monotonic()
        if self.timeout is not None:
            nearest = min(w.started + self.timeout for w in busy)
            timeout = max(0.0, min(timeout, nearest - now))
        handles: dict[Any, _Worker] = {}
        for w in busy:
            handles[w.conn] = w
            handles[w.proc.sentinel] = w
        ready = wait(list(handles), timeout=timeout)
        results: list[tuple[Any, Outcome]] = []
        seen: set[int] = set()
        for handle in ready:
            w = handles[handle]
            if id(w) in seen or w.task is None:
                continue
            results.extend(self._drain(w, seen))
        if self.timeout is not None:
            now = time.monotonic()
            for w in list(self.workers):
                if w.task is not None and now - w.started > self.timeout:
                    results.append(self._fail(
                        w, "Timeout",
                        f"no result after {self.timeout:g} s (stuck in stage {w.stage}); "
                        "the worker was killed and replaced"))
        return results

    def _drain(self, w: _Worker, seen: set[int]) -> list[tuple[Any, Outcome]]:
        out = []
        try:
            while w.task is not None and w.conn.poll():
                kind, task_id, payload = w.conn.recv()
                if kind == "stage":
                    w.stage = payload
                elif kind == "done":
                    out.append((task_id, payload))
                    w.task = None
        except (EOFError, OSError):
            w.proc.join(timeout=2.0)  # the pipe closed: the worker is dying
        if w.task is not None and not w.proc.is_alive():
            seen.add(id(w))
            code = w.proc.exitcode
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            out.append(self._fail(w, "WorkerCrash",
                                  f"the worker process died ({how}) during stage {w.stage}"))
        return out

    def close(self) -> None:
        for w in self.workers:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 5
        for w in self.workers:
            w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(timeout=5)
            w.conn.close()
        self.workers = []

    def terminate(self) -> None:
        for w in self.workers:
            try:
                w.proc.kill()
            except (OSError, ValueError):
                pass
        for w in self.workers:
            w.proc.join(timeout=5)
            w.conn.close()
        self.workers = []


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
