"""The benchmark's smoke run, part of `make test`: `bench/operator_scale.py --smoke` still runs end to end,
every phase, tiny sizes.

The benchmark starts its own throw-away control plane. LocalCluster picks free ports for every component
and keeps its state in its own temp directory, so it runs next to this session's cluster; it does not use
the session's cluster fixture. Nothing about the figures is asserted (they are printed for people): only
that every phase ran without failing and the table was printed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PHASES = {"cold_start", "round", "probe", "restart", "unrelated", "create", "fanout", "lateness", "raw_writes", "failover"}


@pytest.mark.timeout(420)
def test_operator_scale_smoke_runs_every_phase(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "operator_scale.py"), "--smoke", "--json", str(results)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        # SIGINT, not SIGKILL: the benchmark's `finally` stops its control plane, simulator and operators
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        pytest.fail("operator_scale.py --smoke took longer than 300 s:\n" + out[-6000:])
    assert proc.returncode == 0, out[-6000:]
    assert "operator_scale results" in out, out[-3000:]
    data = json.loads(results.read_text())
    assert not data["errors"], data["errors"]
    assert PHASES <= set(data["results"]), sorted(data["results"])
