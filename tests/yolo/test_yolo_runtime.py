"""The rank check of DDP workers (xray_exp.yolo.runtime.check_rank_environment), in fresh processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECK = "from xray_exp.yolo.runtime import check_rank_environment; check_rank_environment(); print('ok')"


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


@pytest.mark.parametrize("env", [{"RANK": "1", "WORLD_SIZE": "2"}, {"WORLD_SIZE": "1"}], ids=["rank1-of-2", "single"])
def test_ultralytics_imported_after_the_rank_is_set_passes(env):
    out = run(f"import ultralytics.utils; {CHECK}", **env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_ultralytics_imported_before_the_rank_is_set_is_refused():
    code = "import os; import ultralytics.utils; os.environ.update(RANK='1', WORLD_SIZE='2'); " + CHECK
    out = run(code, RANK="-1", WORLD_SIZE="1")
    assert out.returncode != 0
    assert "before its launcher set RANK=1 (it reads RANK=-1)" in out.stderr
