"""Worker processes started from a Streamlit request thread never run the page script again."""

from __future__ import annotations

import sys
import threading
import types

from core import parallel


def _square(x: int) -> int:
    return x * x


def test_workers_started_while_a_page_script_is_main_do_not_run_it(tmp_path, monkeypatch):
    """Streamlit puts the page being drawn in ``sys.modules["__main__"]``; a fork server (and
    every process it starts) would run that script again before its work."""
    marker = tmp_path / "ran"
    page = tmp_path / "page.py"
    page.write_text(f"open({str(marker)!r}, 'a').write('x')\n")
    monkeypatch.setenv("FUSION_WORKERS", "2")
    out = {}

    def request():
        script = types.ModuleType("__main__")
        script.__file__ = str(page)
        real = sys.modules["__main__"]
        sys.modules["__main__"] = script  # what Streamlit's script runner does
        try:
            out["method"] = parallel.start_method()
            out["map"] = parallel.process_map(_square, list(range(20)), 2, 5)
            out["chunks"] = list(parallel.prepared_chunks(list(range(20)), _square, 4, workers=2))
            out["main_after"] = sys.modules["__main__"] is script
        finally:
            sys.modules["__main__"] = real

    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
    assert out["method"] == "forkserver"
    assert out["map"] == [x * x for x in range(20)]
    assert [y for chunk in out["chunks"] for y in chunk] == [x * x for x in range(20)]
    assert out["main_after"], "the page's module is back in place"
    assert not marker.exists(), "a worker ran the page script"


def test_jobs_that_read_files_start_two_workers_per_core_unless_told_how_many(monkeypatch):
    monkeypatch.delenv("FUSION_WORKERS", raising=False)
    cores = parallel.cpu_count()
    assert parallel.worker_count(10_000, 1) == cores
    assert parallel.worker_count(10_000, 1, per_core=2) == 2 * cores
    assert parallel.worker_count(3, 1, per_core=2) == min(2 * cores, 3)  # never more than the items
    monkeypatch.setenv("FUSION_WORKERS", "3")
    assert parallel.worker_count(10_000, 1, per_core=2) == 3  # an explicit setting is kept as given


def _collector_enabled(_: int) -> bool:
    import gc

    return gc.isenabled()


def test_workers_collect_garbage_though_they_were_forked_while_the_parent_did_not():
    """A dataset is read with the collector off; workers forked meanwhile must not inherit that."""
    import gc

    gc.disable()
    try:
        assert parallel.process_map(_collector_enabled, [0, 1], 2, 1) == [True, True]
    finally:
        gc.enable()
