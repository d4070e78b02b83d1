"""Worker processes for samples, with per-sample timeouts and replacement of dead workers.

Each worker runs ``run_sample`` on the samples it is sent, one at a time, and keeps a
second one queued so it never waits for the parent. The stage it is in sits in shared
memory. A sample that takes longer than the timeout is abandoned: its worker is killed,
the sample gets an error record naming the stage, the sample queued behind it goes back
to the scheduler, and a fresh worker takes the slot. A worker that dies (a crash in a
decoder, the OOM killer) is handled the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import select
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from mmprep.config import from_dict, to_dict
from mmprep.environment import DOCTOR_HINT
from mmprep.errors import EnvironmentProblem
from mmprep.extract.sample import (
    STAGES,
    ExtractConfig,
    Outcome,
    failure_record,
    preflight,
    run_sample,
)
from mmprep.manifest import Sample

# The fork server imports this one module, which imports the heavy libraries and never
# raises: a library that fails to load (e.g. a torchaudio built for another torch) must
# not kill the fork server with a traceback; each worker then checks its imports itself
# (``preflight``) and reports the cause to the parent as one message.
_PRELOAD = ["mmprep.extract.executors.preload"]
_INIT_ERROR = "__init_error__"  # task id of a worker's start-up failure message
_STAGE_NAMES = ("start", *STAGES)
QUEUE_DEPTH = 2  # samples sent ahead to each worker
# The run stops (EnvironmentProblem) when this many worker processes in a row die before
# starting a sample, with no sample finishing in between: the environment, not a sample.
MAX_START_FAILURES = 5


def _context():
    if sys.platform.startswith("linux"):
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return mp.get_context("spawn")


@contextlib.contextmanager
def _main_hidden():
    """Start workers without re-importing the caller's ``__main__``.

    multiprocessing re-imports the main script in each new process, which re-runs any
    top-level code of a script without an ``if __name__ == "__main__":`` guard (and fails
    for a script read from stdin). Workers only run mmprep code, so the main module is
    hidden while they start.
    """
    main = sys.modules.get("__main__")
    saved = {k: getattr(main, k) for k in ("__file__", "__spec__") if hasattr(main, k)}
    for k in saved:
        if k == "__spec__":
            main.__spec__ = None
        else:
            delattr(main, k)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no orphaned decoders)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _exit_on_hangup(conn) -> None:
    """Exit at once when the process that owns the pool dies, even mid-sample.

    The worker's parent is the fork server, so PR_SET_PDEATHSIG only fires once the fork
    server has noticed; the pipe to the pool's owner hangs up the moment it dies. A daemon
    thread waits for that hang-up (poll with no events asked reports only POLLHUP/POLLERR)
    without reading, so it never competes with the sample loop for messages.
    """
    def watch() -> None:
        poller = select.poll()
        poller.register(conn.fileno(), 0)
        while True:
            for _fd, events in poller.poll():
                if events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    os._exit(70)

    threading.Thread(target=watch, name="mmprep-hangup", daemon=True).start()


def _worker_main(conn, stage, cfg_data: dict[str, Any], torch_threads: int,
                 cpus: set[int] | None, workers: int = 1) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    _die_with_parent()
    _exit_on_hangup(conn)
    if cpus:  # the cores of the process that asked for the pool, not the fork server's
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)
        from mmprep.media.video import set_cores_per_worker

        set_cores_per_worker(len(cpus) // max(1, workers))  # default decoder threads
    try:
        import torch

        torch.set_num_threads(torch_threads)
    except ImportError:  # pragma: no cover
        pass
    cfg = from_dict(ExtractConfig, cfg_data)
    try:
        preflight(cfg, what="extract worker processes")
    except EnvironmentProblem as exc:
        with contextlib.suppress(BrokenPipeError, OSError):
            conn.send((_INIT_ERROR, str(exc)))
        return
    codes = {name: i for i, name in enumerate(_STAGE_NAMES)}
    pipeline_hash = cfg.content_hash()

    def on_stage(name: str) -> None:
        stage.value = codes.get(name, 0)

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        task_id, sample_data = msg
        stage.value = codes["manifest"]  # from here on, a death is this sample's
        sample = Sample.from_dict(sample_data)
        try:
            outcome = run_sample(sample, cfg, on_stage, pipeline_hash=pipeline_hash)
        except Exception as exc:  # noqa: BLE001 - a bug must not lose the sample
            outcome = Outcome(None, error=failure_record(
                sample, "internal", type(exc).__name__, f"unexpected error: {exc}"))
        stage.value = 0
        try:
            conn.send((task_id, outcome))
        except (BrokenPipeError, OSError):
            return


@dataclass
class _Worker:
    proc: Any
    conn: Any
    stage: Any  # shared byte: index into _STAGE_NAMES
    queue: deque = field(default_factory=deque)  # (task_id, Sample) sent, in order
    started: float = 0.0  # when the head of the queue started

    @property
    def stage_name(self) -> str:
        code = self.stage.value
        return _STAGE_NAMES[code] if 0 <= code < len(_STAGE_NAMES) else "start"


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
        self.n_workers = workers
        self.replaced = 0
        self.start_failures = 0  # workers in a row that died before starting a sample
        self.orphans: deque = deque()  # (task_id, Sample) to hand out again
        self.workers = [self._spawn() for _ in range(workers)]

    def _spawn(self) -> _Worker:
        parent, child = self.ctx.Pipe(duplex=True)
        stage = self.ctx.Value("b", 0, lock=False)
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        proc = self.ctx.Process(target=_worker_main, daemon=True,
                                args=(child, stage, self.cfg_data, self.torch_threads, cpus,
                                      self.n_workers))
        try:
            with _main_hidden():
                proc.start()
        except Exception as exc:  # noqa: BLE001 - e.g. the fork server died
            parent.close()
            child.close()
            raise EnvironmentProblem(f"cannot start a worker process ({type(exc).__name__}: "
                                     f"{exc}); {DOCTOR_HINT}") from exc
        child.close()
        return _Worker(proc, parent, stage)

    def idle(self) -> list[_Worker]:
        """Workers that can take another sample now (fewest queued first)."""
        return sorted((w for w in self.workers if len(w.queue) < QUEUE_DEPTH),
                      key=lambda w: len(w.queue))

    def busy(self) -> int:
        return sum(len(w.queue) for w in self.workers)

    def busy_pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers if w.queue]

    def submit(self, worker: _Worker, task_id: Any, sample: Sample) -> None:
        worker.conn.send((task_id, sample.to_dict()))
        if not worker.queue:
            worker.started = time.monotonic()
        worker.queue.append((task_id, sample))

    def _replace(self, worker: _Worker) -> None:
        try:
            worker.proc.kill()
        except (OSError, ValueError):
            pass
        worker.proc.join(timeout=5)
        worker.conn.close()
        self.workers[self.workers.index(worker)] = self._spawn()
        self.replaced += 1

    def _fail(self, worker: _Worker, type_name: str, message: str
              ) -> tuple[Any, Outcome] | None:
        """The worker died or timed out: replace it; its head sample gets an error record,
        unless it never started (then it is handed out again, see ``MAX_START_FAILURES``).
        Samples queued behind it go back to the scheduler (``orphans``)."""
        task_id, sample = worker.queue.popleft()
        stage = worker.stage_name
        self.orphans.extend(worker.queue)
        worker.queue.clear()
        if stage == "start":
            # Died before receiving the sample: not the sample's fault (start-up, or a
            # kill aimed at another process, such as the OOM killer's).
            self.orphans.appendleft((task_id, sample))
            self.start_failures += 1
            if self.start_failures >= MAX_START_FAILURES:
                self.terminate()
                raise EnvironmentProblem(
                    f"{MAX_START_FAILURES} worker processes in a row died before starting a "
                    "sample (last: " + message.format(stage="start-up") + "); finished "
                    "shards are kept and a rerun resumes; run with workers=0 (--workers 0) "
                    f"to see the error in this process; {DOCTOR_HINT}")
            time.sleep(min(0.25 * 2 ** (self.start_failures - 1), 4.0))  # let memory recover
            self._replace(worker)
            return None
        self.start_failures = 0
        record = failure_record(sample, stage, type_name, message.format(stage=stage))
        self._replace(worker)
        return task_id, Outcome(None, error=record)

    def poll(self, timeout: float = 0.5) -> list[tuple[Any, Outcome]]:
        """Wait up to ``timeout`` s; return the (task_id, outcome) pairs that finished.

        Samples queued behind a killed worker's sample land in ``orphans``.
        """
        busy = [w for w in self.workers if w.queue]
        if not busy:
            return []
        if self.timeout is not None:
            nearest = min(w.started + self.timeout for w in busy)
            timeout = max(0.0, min(timeout, nearest - time.monotonic()))
        handles: dict[Any, _Worker] = {}
        for w in busy:
            handles[w.conn] = w
            handles[w.proc.sentinel] = w
        results: list[tuple[Any, Outcome]] = []
        drained: set[int] = set()
        for handle in wait(list(handles), timeout=timeout):
            w = handles[handle]
            if id(w) not in drained and w in self.workers:
                drained.add(id(w))
                results.extend(self._drain(w))
        if self.timeout is not None:
            now = time.monotonic()
            for w in list(self.workers):
                if w.queue and now - w.started > self.timeout:
                    failed = self._fail(
                        w, "Timeout", f"no result after {self.timeout:g} s (stuck in stage "
                                      "{stage}); the worker was killed and replaced")
                    if failed is not None:
                        results.append(failed)
        return results

    def _drain(self, w: _Worker) -> list[tuple[Any, Outcome]]:
        out = []
        try:
            while w.queue and w.conn.poll():
                task_id, outcome = w.conn.recv()
                if task_id == _INIT_ERROR:
                    self.terminate()
                    raise EnvironmentProblem(outcome)
                head_id, _ = w.queue.popleft()
                assert head_id == task_id, "worker answered out of order"
                out.append((task_id, outcome))
                w.started = time.monotonic()
                self.start_failures = 0  # a sample finished: the workers can work
        except (EOFError, OSError):
            w.proc.join(timeout=2.0)  # the pipe closed: the worker is dying
        if w.queue and not w.proc.is_alive():
            code = w.proc.exitcode
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            failed = self._fail(w, "WorkerCrash",
                                f"the worker process died ({how}) during stage {{stage}}")
            if failed is not None:
                out.append(failed)
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
