"""The package root holds the entry points (one table: xray_exp/cli.py COMMANDS) and the shared bases only;
every entry point's `--help` is light; one error-to-exit handler.

    python -m pytest tests/package/test_entry_points.py -q
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xray_exp.cli import ALIASES, COMMANDS
from xray_exp.errors import ConfigError, exit_on_user_error

REPO = Path(__file__).resolve().parents[2]
SHARED_BASES = {"__init__", "cli", "errors", "project", "offline"}  # imported by everything, import nothing heavy
FORMER_NAMES = {"registry": "models", "tracking": "upload"}  # old `python -m` names that keep working
HEAVY = ("torch", "ultralytics", "mlflow", "ray", "onnxruntime", "numpy")  # numpy: ~0.2 s and 15 MiB of start-up


def test_the_package_root_is_entry_points_and_shared_bases():
    root_modules = {p.stem for p in (REPO / "xray_exp").glob("*.py")}
    packages_run_with_m = {module for module, _ in COMMANDS.values() if (REPO / module.replace(".", "/")).is_dir()}
    assert packages_run_with_m and all(
        (REPO / m.replace(".", "/") / "__main__.py").is_file() for m in packages_run_with_m
    )
    entry_points = {module.split(".")[1] for module, _ in COMMANDS.values() if module not in packages_run_with_m}
    unexpected = root_modules - entry_points - SHARED_BASES - set(FORMER_NAMES)
    assert not unexpected, f"library modules at the package root (move them into a package): {sorted(unexpected)}"
    assert entry_points <= root_modules and set(FORMER_NAMES) <= root_modules
    assert {ALIASES.get(k, k) for k in ALIASES} <= set(COMMANDS)


# One process for every command: each `--help` runs as `python -m` would run it; a heavy library that shows up
# in sys.modules is charged to the command that loaded it.
HELP_ALL = """
import json, runpy, sys
heavy, out = {heavy!r}, {{}}
for name, module in {commands!r}:
    sys.argv = [module, "--help"]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    loaded = sorted(m for m in heavy if m in sys.modules)
    out[name] = {{"exit": code, "heavy": loaded}}
    for m in loaded:
        del sys.modules[m]
print("RESULT=" + json.dumps(out))
"""


def test_every_command_answers_help_without_heavy_imports(tmp_path):
    commands = [(name, module) for name, (module, _) in COMMANDS.items()]
    proc = subprocess.run(
        [sys.executable, "-c", HELP_ALL.format(heavy=HEAVY, commands=commands)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT=")), None)
    assert line, proc.stderr[-3000:]
    result = json.loads(line.removeprefix("RESULT="))
    assert set(result) == set(COMMANDS)
    failed = {name: r for name, r in result.items() if r["exit"] != 0 or r["heavy"]}
    assert not failed, f"--help failed or imported {HEAVY}: {failed}"


def test_user_errors_exit_with_the_message_and_status(capsys):
    cleaned = []
    with pytest.raises(SystemExit) as stop:
        with exit_on_user_error(clean_up=lambda: cleaned.append(True)):
            raise ConfigError("split: 'tst' is not a split; use train, val or test")
    assert stop.value.code == 2 and cleaned == [True]
    assert capsys.readouterr().err == "ERROR: split: 'tst' is not a split; use train, val or test\n"
    with pytest.raises(ConfigError):  # a sweep job: the sweeper records it
        with exit_on_user_error(reraise=True):
            raise ConfigError("x")
    with pytest.raises(KeyError):  # a defect is not a user error: its traceback stays
        with exit_on_user_error():
            raise KeyError("x")


def test_the_former_command_names_point_at_the_new_ones():
    for old, new in FORMER_NAMES.items():
        text = (REPO / "xray_exp" / f"{old}.py").read_text()
        assert f"python -m xray_exp.{new}" in text and "former name" in text
    proc = subprocess.run(
        [sys.executable, "-m", "xray_exp.tracking", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "python -m xray_exp.upload <run_dir>" in proc.stderr
