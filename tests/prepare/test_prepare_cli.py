"""The `python -m xray_exp.prepare` command line: light --help, strict exit status, default locations.

.venv/bin/pytest tests/prepare/test_prepare_cli.py -q
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xray_exp import CONF_DIR
from xray_exp.prepare.fake_sources import make_vindr_source

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "ultralytics", "ray", "mlflow", "numba", "ensemble_boxes", "cv2", "matplotlib")


def prepare(*args: str, root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XRAY_EXP_ROOT": str(root)}
    return subprocess.run(
        [sys.executable, "-m", "xray_exp.prepare", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_datasets_without_importing_heavy_modules():
    code = (
        "import runpy, sys\n"
        "sys.argv = ['prepare', '--help']\n"
        "try:\n    runpy.run_module('xray_exp.prepare', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"print('HEAVY', sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "dataset: coco, csv, nih_cxr14, vindr_cxr, voc" in proc.stdout, proc.stderr
    assert "HEAVY []" in proc.stdout


def test_cli_writes_to_the_default_location_the_train_config_reads(tmp_path):
    source = make_vindr_source(tmp_path / "src", images=6, size=(64, 80), normal_fraction=0.3)
    proc = prepare("dataset=vindr_cxr", f"source={source.root}", "workers=1", "summary.enabled=false", root=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "prepare vindr_cxr: 6 usable images listed" in proc.stdout and "issues:  none" in proc.stdout
    out = tmp_path / "outputs" / "datasets" / "vindr_cxr"
    assert yaml.safe_load((out / "data.yaml").read_text())["path"] == str(out)
    assert len(list((out / ".prepare" / "runs").glob("*/.hydra/config.yaml"))) == 1  # Hydra's files, hidden
    train_side = yaml.safe_load((CONF_DIR / "dataset" / "vindr_cxr.yaml").read_text())
    assert set(train_side) == {"name", "data_yaml"}
    resolved = train_side["data_yaml"].replace("${paths.output_dir}", str(tmp_path / "outputs"))
    assert resolved == str(out / "data.yaml")


def test_cli_strict_exits_non_zero_naming_the_file(tmp_path):
    source = make_vindr_source(tmp_path / "src", images=4, size=(64, 80), missing=1)
    args = (
        "dataset=vindr_cxr",
        f"source={source.root}",
        f"out_dir={tmp_path / 'out'}",
        "summary.enabled=false",
    )
    proc = prepare(*args, "strict=true", root=tmp_path)
    assert proc.returncode == 2
    assert f"ERROR: strict: missing_image: train.csv lists {source.missing_ids[0]}" in proc.stderr
    lenient = prepare(*args, root=tmp_path)
    assert lenient.returncode == 0 and "missing_image 1" in lenient.stdout


def test_cli_coco_that_does_not_parse_exits_non_zero_naming_the_file_and_line(tmp_path):
    source = tmp_path / "export"
    source.mkdir()
    (source / "annotations.json").write_text('{"images": [],\n "categories": [}')
    out = tmp_path / "out"
    proc = prepare("dataset=coco", f"source={source}", f"out_dir={out}", root=tmp_path)
    assert proc.returncode == 2
    assert f"ERROR: {source / 'annotations.json'}: not valid JSON: " in proc.stderr
    assert "at line 2 column 17" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [".prepare"]  # Hydra's run folder only: no data written
    assert sorted(p.name for p in (out / ".prepare").iterdir()) == ["runs"]


def test_cli_rejects_a_typo_at_compose_time(tmp_path):
    proc = prepare("dataset=nih_cxr14", "source=/nowhere", "fusion.iou=0.5", root=tmp_path)
    assert proc.returncode == 1 and "Key 'iou' not in 'FusionConfig'" in proc.stderr


def test_workers_die_with_a_killed_main_process(tmp_path):
    """`kill -9` of `python -m xray_exp.prepare` mid-conversion leaves no orphan worker behind."""
    import signal
    import time

    import psutil

    source = make_vindr_source(tmp_path / "src", images=60, size=(1024, 1024))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xray_exp.prepare",
            "dataset=vindr_cxr",
            f"source={source.root}",
            f"out_dir={out}",
            "workers=2",
            "png_compression=9",
            "longest_side=null",
            "summary.enabled=false",
            "progress=false",
        ],
        cwd=REPO,
        env={**os.environ, "XRAY_EXP_ROOT": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: list[psutil.Process] = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:  # both workers up and converting
            workers = psutil.Process(proc.pid).children(recursive=True)
            if len(workers) >= 2 and list(out.glob("images/*/*.png")):
                break
            time.sleep(0.1)
        assert proc.poll() is None and len(workers) >= 2, "prepare finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        gone, alive = psutil.wait_procs(workers, timeout=5)
        alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"orphaned workers still running: {[(p.pid, p.cmdline()) for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for worker in workers:
            try:
                worker.kill()
            except psutil.NoSuchProcess:
                pass
