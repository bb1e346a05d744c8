"""Training job records in a small sqlite file next to the service's outputs (survive a restart).

    store = JobStore("outputs/serve-jobs/jobs.sqlite")
    store.save(job_id, created_at, {"status": "queued", ...})   # insert or replace
    store.load(limit=100)                                       # [dict, ...], oldest first

One row per job: id, created_at and the record as JSON. One connection per call (the service's
worker threads share the store); sqlite's own locking serialises writers.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

SCHEMA = "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, record TEXT NOT NULL)"


class JobStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def save(self, job_id: str, created_at: str, record: dict) -> None:
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO jobs (id, created_at, record) VALUES (?, ?, ?)",
                (job_id, created_at, json.dumps(record)),
            )

    def load(self, limit: int) -> list[dict]:
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT record FROM (SELECT record, created_at, rowid FROM jobs "
                "ORDER BY created_at DESC, rowid DESC LIMIT ?) ORDER BY created_at, rowid",
                (limit,),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]
