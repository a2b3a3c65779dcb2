"""Load, the CI size: 5 simultaneous browser sessions upload, predict and explain against one
local server (``python -m bench load`` runs the same with 20). No session sees an error, none
is starved, and the figures are printed.

Run with ``pytest -m browser tests/dashboard/test_load.py -s`` to see them.
"""

from __future__ import annotations

import pytest

from bench.load import run

pytestmark = pytest.mark.browser

SESSIONS = 5


@pytest.mark.timeout(900)
def test_simultaneous_sessions_upload_predict_and_explain_without_errors(small_demo_files):
    result = run(
        {
            "sessions": SESSIONS,
            "rounds": 1,  # five sessions at once over two job slots: the queue is exercised in one round
            "seconds": 60,
            "max_jobs": 2,
            "data": str(small_demo_files.data),
            "checkpoints": str(small_demo_files.checkpoints),
        }
    )
    if "skipped" in result:
        pytest.skip(result["skipped"])
    latency = result["latency_s"]
    print(
        f"\nload: {SESSIONS} sessions, {result['rounds']} rounds in {result['elapsed_s']:.0f} s, {result['errors']} errors, "
        f"predict p50 {latency['predict']['p50']} s / p95 {latency['predict']['p95']} s, "
        f"explain p50 {latency['explain']['p50']} s / p95 {latency['explain']['p95']} s, "
        f"server peak RSS {result['memory']['server_peak_rss_mib']:.0f} MiB"
    )
    assert result["errors"] == 0, result["error_messages"]
    assert result["starved_sessions"] == 0 and min(result["rounds_per_session"]) >= 1, result["rounds_per_session"]
    assert latency["explain"]["n"] == result["rounds"] and latency["explain"]["p95"] > 0
    assert result["memory"]["server_peak_rss_mib"] >= result["memory"]["server_rss_after_start_mib"] > 0
