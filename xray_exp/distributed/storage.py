"""Storage every node of a Ray cluster can read: `ray.storage_path`, a shared folder or a URI.

path = to_storage(folder, cfg.ray.storage_path, "<run>-start")   # where every node can read it
checkpoint = open_checkpoint(path)                                 # a ray.train.Checkpoint of it
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger("xray_exp.ray")


def is_uri(path: str) -> bool:
    return "://" in str(path)


def to_storage(local_dir: Path, storage_path: str, name: str) -> str:
    """Copy `local_dir` to `storage_path/name` (a shared folder or a URI) so every node can read it."""
    if is_uri(storage_path):
        import pyarrow.fs

        uri = f"{storage_path.rstrip('/')}/{name}"
        pyarrow.fs.copy_files(str(local_dir), uri)
        return uri
    target = Path(storage_path) / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(local_dir, target)
    return str(target)


def open_checkpoint(path: str):
    """A ray.train.Checkpoint of a folder or URI written by `to_storage`."""
    from ray.train import Checkpoint

    return Checkpoint(path) if is_uri(path) else Checkpoint.from_directory(path)
