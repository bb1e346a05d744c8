"""Send each hostile input to a running service and print what it cost: status, CPU ms, peak RSS.

    python -m xray_exp.serve --port 8000 &                     # the server, on this machine
    python scripts/hostile_inputs.py --url http://127.0.0.1:8000 --pid $!
    python scripts/hostile_inputs.py --url http://127.0.0.1:8000 --list

The inputs and how they are measured: xray_exp/bench/hostile.py. Loopback targets only. Exit code 1 when an
input got anything but 413 (or the control image anything but 200).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
NIH_IMAGES = REPO.parent / "shared" / "data" / "nih-cxr14-bbox" / "images"


def control_images() -> dict[str, bytes]:
    """A normal radiograph as PNG and as a DICOM (the NIH sample when present, else a synthetic film)."""
    import cv2

    from xray_exp.data.synthetic_dicom import chest_xray_bytes

    pngs = sorted(NIH_IMAGES.glob("*.png")) if NIH_IMAGES.is_dir() else []
    if pngs:
        gray = cv2.imread(str(pngs[0]), cv2.IMREAD_GRAYSCALE)
    else:
        from xray_exp.serve.demo_model import synthetic_images

        gray = synthetic_images(1, size=1024, seed=1)[0]
    png = cv2.imencode(".png", gray)[1].tobytes()
    return {"control: chest X-ray PNG": png, "control: chest X-ray DICOM": chest_xray_bytes(gray)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000 (loopback only)")
    parser.add_argument("--pid", type=int, help="server process id: measure its CPU and peak RSS via /proc")
    parser.add_argument("--only", nargs="*", help="input names to send (default: all)")
    parser.add_argument("--list", action="store_true", help="print the inputs and exit")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    from xray_exp.bench.hostile import DESCRIPTIONS, measure, table

    if args.list:
        for name, text in DESCRIPTIONS.items():
            print(f"{name:30s} {text}")
        return 0
    host = urlsplit(args.url).hostname or ""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        parser.error(f"--url must be a loopback address, got {host!r}")
    controls = control_images()
    rows = measure(args.url, args.pid, args.only, controls)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    bad = [r["input"] for r in rows if r["status"] != (200 if r["input"] in controls else 413)]
    if bad:
        print(f"unexpected status for: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
