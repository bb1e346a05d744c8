"""`python -m xray_exp.models`: the registered models from the command line (list, show, promote by hand).

    python -m xray_exp.models list [yolo12n]               # versions, aliases, objectives
    python -m xray_exp.models show yolo12n development     # one version's tags (number or alias)
    python -m xray_exp.models promote yolo12n 3 --alias production

The promotion rules themselves live in xray_exp/mlops/registry.py.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from xray_exp.errors import ModelError, exit_with_errors
from xray_exp.mlops.client import default_tracking_uri, tracking_client
from xray_exp.mlops.registry import BASE_ALIAS, FINETUNED_ALIAS, find_version, promote


def version_rows(name: str | None = None, tracking_uri: str | None = None) -> list[dict[str, Any]]:
    """Every registered version (of `name`, or of all models): name, version, aliases, objective, run."""
    client = tracking_client(tracking_uri)
    versions = client.search_model_versions(f"name='{name}'" if name else "")
    aliases: dict[tuple[str, str], list[str]] = {}  # version search results carry no aliases: ask each model
    for model in {v.name for v in versions}:
        for alias, version in (client.get_registered_model(model).aliases or {}).items():
            aliases.setdefault((model, str(version)), []).append(alias)
    rows = []
    for v in sorted(versions, key=lambda v: (v.name, int(v.version))):
        rows.append(
            {
                "name": v.name,
                "version": int(v.version),
                "aliases": ",".join(sorted(aliases.get((v.name, str(v.version)), []))) or "-",
                "objective": v.tags.get("objective", "-"),
                "value": v.tags.get("objective_value", "-"),
                "run_id": v.run_id or "-",
                "note": v.tags.get("promotion.skipped", ""),
            }
        )
    return rows


def main(argv: list[str] | None = None, prog: str = "python -m xray_exp.models") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Registered models: list versions, show one, promote by hand."
    )
    parser.add_argument(
        "--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///<project>/outputs/mlflow.db"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="versions with aliases and objectives")
    ls.add_argument("name", nargs="?")
    show = sub.add_parser("show", help="one version's tags (a version number or an alias)")
    show.add_argument("name")
    show.add_argument("version", help="3 or development")
    pro = sub.add_parser("promote", help="move an alias to a version")
    pro.add_argument("name")
    pro.add_argument("version")
    pro.add_argument("--alias", required=True, help=f"{BASE_ALIAS} (base models), {FINETUNED_ALIAS} (fine-tunes)")
    args = parser.parse_args(argv)
    from mlflow.exceptions import MlflowException  # after parsing: --help stays quick

    uri = args.tracking_uri or default_tracking_uri()
    try:
        if args.command == "list":
            rows = version_rows(args.name, uri)
            print(f"{'name':<20} {'ver':>4} {'aliases':<22} {'objective':<16} {'value':<10} run_id   note")
            for r in rows:
                print(
                    f"{r['name']:<20} {r['version']:>4} {r['aliases']:<22} {r['objective']:<16} "
                    f"{str(r['value'])[:10]:<10} {r['run_id'][:8]} {r['note']}"
                )
            if not rows:
                print(f"(no registered versions at {uri})")
        elif args.command == "show":
            mv = (
                tracking_client(uri).get_model_version(args.name, args.version)
                if args.version.isdigit()
                else find_version(args.name, args.version, uri)
            )
            print(
                json.dumps(
                    {
                        "name": mv.name,
                        "version": int(mv.version),
                        "aliases": list(mv.aliases or []),
                        "run_id": mv.run_id,
                        "source": mv.source,
                        "status": mv.status,
                        "tags": dict(mv.tags),
                    },
                    indent=2,
                )
            )
        else:
            mv = promote(args.name, args.version, args.alias, uri)
            print(f"{mv.name} v{mv.version} now holds @{args.alias} (aliases: {', '.join(mv.aliases)})")
    except (ModelError, MlflowException) as exc:
        exit_with_errors([str(exc).splitlines()[0]])
    return 0
