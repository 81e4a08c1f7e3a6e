"""prometheus_client internals of its multiprocess mode.

- `multiprocess_values`: prometheus_client picks the class of every metric value once,
  when it is first imported, from ``PROMETHEUS_MULTIPROC_DIR`` then; this reads that
  choice (``prometheus_client.values.ValueClass``). Fallback: whether the variable is set.
- `live_gauge_pids`: the processes with live-mode gauge files, from the files' names
  (what ``mark_process_dead`` removes). Fallback: none (only the process manager's hook
  cleans up then).
"""

from __future__ import annotations

import glob
import os

from blockmon._compat import Layout

_MULTIPROCESS = "MmapedValue"
_SINGLE = "MutexValue"


def _value_class_name() -> str:
    from prometheus_client import values

    return str(values.ValueClass.__name__)


LAYOUT = Layout("prometheus_client", lambda: _value_class_name() in (_MULTIPROCESS, _SINGLE))


def multiprocess_values() -> bool:
    """True when prometheus_client writes metric values to the multiprocess directory."""
    if LAYOUT.ok():
        return _value_class_name() == _MULTIPROCESS
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def _files_probe() -> bool:
    import inspect

    from prometheus_client import multiprocess

    return "gauge_{mode}_{pid}.db" in inspect.getsource(multiprocess.mark_process_dead)


FILES = Layout("prometheus_client", _files_probe)


def live_gauge_pids(directory: str) -> dict[int, list[str]]:
    """The processes that have live-mode gauge files in ``directory`` (prometheus_client
    names them ``gauge_<mode>_<pid>.db``), each with its files. Fallback: none known."""
    if not FILES.ok():
        return {}
    pids: dict[int, list[str]] = {}
    for path in glob.glob(os.path.join(glob.escape(directory), "gauge_live*_*.db")):
        pid = os.path.basename(path)[: -len(".db")].rpartition("_")[2]
        if pid.isdigit():
            pids.setdefault(int(pid), []).append(path)
    return pids
