"""A gate's tuned thresholds kept on the classifier's own registered version (tags `gate.*`), so that the
next `gate=models:/<model>-cls@<alias>` without low/high reuses them for the same detector.

    python -m xray_exp.evaluate model=models:/yolo12s@development gate=models:/yolo12n-cls@development gate.tune=true
    save_gate_tags("models:/yolo12n-cls@development", uri, {"gate.low": "0.1", "gate.high": "0.9", ...})
    version, tags = read_gate_tags("models:/yolo12n-cls@development", uri)   # "yolo12n-cls v3", {"gate.low": ...}

The tags: gate.low, gate.high, gate.mode, gate.objective (what the search maximised, on which images),
gate.tuned_for (the detector as given: models:/yolo12s/3, best.pt, yolo12n-ensemble) and
gate.tuned_for_digest (sha256 prefix of the detector's weights; an ensemble's of its members and fusion):
the thresholds are reused only when that digest is the one of the detector being gated.
"""

from __future__ import annotations

from xray_exp.errors import ModelError
from xray_exp.mlops.client import tracking_client
from xray_exp.mlops.registry import find_version, parse_models_uri

PREFIX = "gate."


def classifier_version(uri: str, tracking_uri: str | None = None):
    """The model version a `models:/<name>@<alias>` or `models:/<name>/<n>` URI names (ModelError if none)."""
    name, alias, version = parse_models_uri(uri)
    if version is None:
        return find_version(name, alias, tracking_uri)
    try:
        return tracking_client(tracking_uri).get_model_version(name, version)
    except Exception as exc:  # mlflow raises its own types for an unknown version
        raise ModelError(f"registry: no model version {name} v{version}: {exc}") from exc


def read_gate_tags(uri: str, tracking_uri: str | None = None) -> tuple[str, dict[str, str]]:
    """("<name> v<version>", the version's gate.* tags); no tags: an empty dict."""
    mv = classifier_version(uri, tracking_uri)
    return f"{mv.name} v{mv.version}", {k: v for k, v in (mv.tags or {}).items() if k.startswith(PREFIX)}


def save_gate_tags(uri: str, tracking_uri: str | None, tags: dict[str, str]) -> str:
    """Set `tags` (gate.* keys) on the version `uri` names; returns "<name> v<version>"."""
    unknown = [k for k in tags if not k.startswith(PREFIX)]
    if unknown:
        raise ValueError(f"gate tags must start with {PREFIX!r}: {unknown}")
    mv = classifier_version(uri, tracking_uri)
    client = tracking_client(tracking_uri)
    for key, value in tags.items():
        client.set_model_version_tag(mv.name, str(mv.version), key, str(value)[:5000])
    return f"{mv.name} v{mv.version}"
