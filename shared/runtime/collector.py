"""Python's garbage collector in a long-running service: what exists once the app has started is
kept out of its passes, and the CPU its passes take is counted.

Once started, a service holds a few hundred thousand objects for as long as it runs (modules,
routes, models, clients). Every collection of the oldest generation walked all of them: 7-14 % of
a busy service's CPU (`bench/bench_e2e.py`, which prints `dvc_gc_cpu_seconds_total` per dossier);
frozen (`gc.freeze`), they are skipped, and the passes cost 3-4 %.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Counter

GC_SECONDS = Counter(
    "dvc_gc_cpu_seconds_total",
    "CPU time of the garbage collector's passes, by generation collected.",
    ["generation"],
)

_pass_started = 0.0


def _time_pass(phase: str, info: dict[str, Any]) -> None:
    global _pass_started
    if phase == "start":
        _pass_started = time.thread_time()
    else:
        GC_SECONDS.labels(str(info["generation"])).inc(time.thread_time() - _pass_started)


def count_collector_time() -> None:
    """Add each pass's CPU time (of the thread it ran in) to `GC_SECONDS`; once per process."""
    if _time_pass not in gc.callbacks:
        gc.callbacks.append(_time_pass)


def freeze_what_exists() -> None:
    """Move every object alive now out of the collector's reach for good, after collecting what
    is garbage already (it would otherwise never be freed)."""
    gc.collect()
    gc.freeze()
