"""Peak resident memory of stages of one process, sampled from /proc (Linux) by a background thread."""

from __future__ import annotations

import os
import resource
import threading
import time
from contextlib import contextmanager

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """Current resident set size of this process in MB (0 where /proc is unavailable)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE / 2**20
    except OSError:
        return 0.0


def max_rss_mb() -> float:
    """Peak resident set size of this process so far (getrusage), in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StagePeaks:
    """Record wall seconds and peak RSS (MB) of named stages.

    ``with peaks.stage("fit"): ...`` stores ``seconds[name]``, ``peak_mb[name]`` (highest sampled RSS during the
    stage) and ``start_mb[name]`` (RSS when it began), so ``peak - start`` is what the stage added.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}
        self.start_mb: dict[str, float] = {}
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, rss_mb())
            time.sleep(self.interval)

    @contextmanager
    def stage(self, name: str):
        """Time the block and track its peak RSS."""
        self._peak = self.start_mb[name] = rss_mb()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - t0
            self.peak_mb[name] = max(self._peak, rss_mb())

    def close(self) -> None:
        """Stop the sampling thread."""
        self._stop.set()
        self._thread.join()


def status_mb(field: str) -> float | None:
    """A memory field (VmRSS, VmHWM) of /proc/self/status in MB; None where there is no /proc."""
    try:
        with open("/proc/self/status") as fh:
            line = next(ln for ln in fh if ln.startswith(field + ":"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return None


def reset_peak() -> str:
    """Reset the kernel's peak-RSS counter (VmHWM) so the peak covers what follows; say which peak is used."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return "VmHWM reset before fit"
    except OSError:
        return "ru_maxrss of the whole process"


def peak_since_reset_mb(source: str) -> float:
    """The peak RSS in MB: VmHWM since :func:`reset_peak`, or the whole process's ``ru_maxrss`` (``source``)."""
    import sys

    if source.startswith("VmHWM"):
        return status_mb("VmHWM") or float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
