"""Send what a run's MLflow journal still holds, after an outage that outlived the run:

    python -m xray_exp.upload outputs/runs/yolo12n-20261126-120000 [--tracking-uri URI]

Replays the unsent events of `<run>/tracking/events.jsonl` (into the same MLflow run when it had been
created) and brings `<run>/summary.json` up to date: MLflow run id, registration, unsent events.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from xray_exp.errors import exit_with_errors
from xray_exp.mlops.tracker import STATE, Tracker


def upload(run_dir: str | Path, tracking_uri: str | None = None) -> Tracker:
    """Send a run folder's journaled events that never reached MLflow; update its summary.json."""
    state_file = Path(run_dir) / "tracking" / STATE
    if not state_file.exists():
        raise FileNotFoundError(f"{state_file}: no tracking journal in this run folder")
    uri = tracking_uri or json.loads(state_file.read_text()).get("tracking_uri")
    tracker = Tracker(run_dir, uri, enabled=True)
    if not tracker.flush():
        raise ConnectionError(f"upload stopped: {tracker.problem}")
    update_summary(Path(run_dir), tracker)
    return tracker


def update_summary(run_dir: Path, tracker: Tracker) -> bool:
    """Write the tracker's outcome into `run_dir/summary.json` (when the run wrote one); True if it did."""
    path = run_dir / "summary.json"
    if not path.is_file():
        return False
    summary = json.loads(path.read_text())
    summary.update(tracker.outcome())
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    os.replace(tmp, path)
    return True


def main(argv: list[str] | None = None, prog: str = "python -m xray_exp.upload") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Send the MLflow events a run folder journaled but could not send (after an outage)."
    )
    parser.add_argument("run_dir", help="the run folder (outputs/runs/<run>)")
    parser.add_argument("--tracking-uri", default=None, help="defaults to the URI the run was started with")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        tracker = upload(args.run_dir, args.tracking_uri)
    except (FileNotFoundError, ConnectionError) as exc:
        exit_with_errors([str(exc)])
    print(f"uploaded: run {tracker.run_id} at {tracker.tracking_uri} ({tracker.state['applied']} events)")
    return 0
