"""Run the service with uvicorn: `python -m xray_exp.serve [--host H] [--port P] [--model M]`.

Settings come from XRAY_SERVE_* environment variables (see xray_exp/serve/__init__.py); the flags
override XRAY_SERVE_HOST, XRAY_SERVE_PORT and XRAY_SERVE_MODEL.
"""

from __future__ import annotations

import argparse
import logging
import sys

from xray_exp.errors import XrayExpError, exit_on_user_error, exit_with_errors
from xray_exp.serve.settings import ServeSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xray_exp.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="bind address (default XRAY_SERVE_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default XRAY_SERVE_PORT or 8000)")
    parser.add_argument("--model", help=".onnx file, folder with model.onnx, or models:/<name>@<alias>")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        settings = ServeSettings.from_env()
    except ValueError as exc:
        exit_with_errors([str(exc)])
    if args.host:
        settings.host = args.host
    if args.port is not None:
        settings.port = args.port
    if args.model:
        settings.model = args.model

    import uvicorn

    from xray_exp.serve.app import create_app  # lazy: heavy (PIL, cv2, fastapi, highdicom)

    with exit_on_user_error():  # e.g. an audit log that cannot be written with XRAY_SERVE_AUDIT_REQUIRED=true
        try:
            app = create_app(settings)
        except XrayExpError:
            raise
        except Exception as exc:  # a configured local model that is missing or not a valid ONNX detector
            exit_with_errors([f"cannot load the model: {exc}"])
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level.lower())
    return 0


if __name__ == "__main__":
    sys.exit(main())
