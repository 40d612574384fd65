"""Ensemble members trained side by side in threads on CPU.

A training step of one member (a minibatch of 128 pairs) is a few hundred small tensor operations, which torch's
intra-op threads speed up little: on the 2-core reference machine, about 29 ms per step on one thread and 22 ms
on two. Members are independent until their similarities are averaged, so on CPU they train in threads, the
intra-op threads shared out among them (one each on 2 cores): the operations of one member run while another's
Python code dispatches the next. Three members then train at about 20 ms per step in all; at 10,000 reference
pairs the ensemble trains at 7,000 pairs/s against 4,000 one member after the other (``benchmarks/README.md``,
Speed).

Every member draws its minibatches from its own NumPy generator and its noise and dropout masks from its own
torch generator (see :func:`scmatch.model.train._loop.train`), so its weights do not depend on the threads' timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import TypeVar

import torch

from ._loop import TrainingCancelledError

T = TypeVar("T")


def member_threads(n_jobs: int, device: torch.device, *, world: int = 1) -> int:
    """Threads to train ``n_jobs`` members in: one each on CPU, one in all on a GPU or across processes."""
    if n_jobs < 2 or device.type != "cpu" or world > 1:
        return 1
    return n_jobs


@contextmanager
def _torch_threads(n: int):
    """Set torch's intra-op threads to ``n`` for the duration (process-wide), then restore them."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_members(jobs: Sequence[Callable[[threading.Event], T]], *, n_threads: int) -> list[T]:
    """Run ``jobs`` (each called with a stop event) and return their results in order.

    With ``n_threads`` > 1 the jobs run in that many threads, and torch's intra-op threads are shared out among
    them (at least one each) for the duration. The first job to raise sets the stop event, which the others check
    before each training step, and its error is raised once every job has ended; an interruption (Ctrl-C) of
    the waiting thread stops them likewise.
    """
    stop = threading.Event()
    if n_threads < 2:
        return [job(stop) for job in jobs]
    per_job = max(1, torch.get_num_threads() // n_threads)
    with _torch_threads(per_job):
        pool = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="scmatch-member")
        try:
            futures = [pool.submit(_with_threads, job, stop, per_job) for job in jobs]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done):
                stop.set()
            wait(futures)
            errors = [f.exception() for f in futures if f.exception() is not None]
            first = next((e for e in errors if not _cancelled(e)), errors[0] if errors else None)
            if first is not None:
                raise first
            return [f.result() for f in futures]
        except BaseException:
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _with_threads(job: Callable[[threading.Event], T], stop: threading.Event, n: int) -> T:
    torch.set_num_threads(n)  # the worker's own OpenMP setting (a new thread starts from the default)
    return job(stop)


def _cancelled(error: BaseException) -> bool:
    return isinstance(error, TrainingCancelledError)
