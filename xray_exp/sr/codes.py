"""The class -> finding code table of the structured reports (xray_exp/sr/finding_codes.yaml, or another YAML).

    codes = FindingCodes.load()                   # the built-in NIH ChestX-ray14 + VinDr-CXR table
    codes = FindingCodes.load("my_codes.yaml")    # {class: {scheme, value, meaning, source}}
    codes.code_for("Nodule/Mass")                 # Code(value='27925004', scheme_designator='SCT', ...)

A class the table does not name gets a code of the local scheme 99XRAYEXP made from its name (said in a log
line once per class), so a report is always written.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydicom.sr.coding import Code

from xray_exp.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_TABLE = Path(__file__).with_name("finding_codes.yaml")
LOCAL_SCHEME = "99XRAYEXP"
REQUIRED = ("scheme", "value", "meaning")


def normalize_class(name: str) -> str:
    """'Nodule/Mass' -> 'nodule_mass'; 'Aortic enlargement' -> 'aortic_enlargement'."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


@dataclass
class FindingCodes:
    """Finding codes by normalized class name; `path` is the table they came from."""

    table: dict[str, Code]
    path: Path | None = None
    _warned: set[str] = field(default_factory=set, repr=False)

    @classmethod
    def load(cls, path: str | Path | None = None) -> FindingCodes:
        """Read a YAML table; ConfigError naming the file and the entry when it is malformed."""
        path = Path(path).expanduser() if path else DEFAULT_TABLE
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"finding code table {path}: cannot read it ({exc}). Fix: point sr_codes= at a YAML "
                "file mapping class names to {scheme, value, meaning}."
            ) from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"finding code table {path}: expected a mapping of class names, got {type(raw).__name__}")
        table: dict[str, Code] = {}
        for name, entry in raw.items():
            missing = [k for k in REQUIRED if not isinstance(entry, dict) or not str(entry.get(k) or "").strip()]
            if missing:
                raise ConfigError(
                    f"finding code table {path}: entry {name!r} lacks {', '.join(missing)}. "
                    "Fix: give each class {scheme: SCT, value: '<code>', meaning: '<text>'}."
                )
            value = str(entry["value"])
            if len(value) > 16:
                raise ConfigError(
                    f"finding code table {path}: entry {name!r} value {value!r} is longer than 16 "
                    "characters (DICOM Code Value)."
                )
            table[normalize_class(name)] = Code(value, str(entry["scheme"]), str(entry["meaning"]))
        return cls(table, path)

    def code_for(self, label: str) -> Code:
        """The finding code of a class; a local-scheme code (logged once) when the table has none."""
        key = normalize_class(label)
        if key in self.table:
            return self.table[key]
        if key not in self._warned:
            self._warned.add(key)
            log.warning(
                "class %r has no finding code in %s: coded as %s (local scheme)", label, self.path, LOCAL_SCHEME
            )
        return Code(("XC-" + key.upper())[:16], LOCAL_SCHEME, str(label)[:64] or "finding")
