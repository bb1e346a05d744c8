"""The former name of `python -m xray_exp.upload`, kept so that existing scripts keep working:

python -m xray_exp.tracking upload outputs/runs/<run>     # = python -m xray_exp.upload outputs/runs/<run>
"""

import sys

from xray_exp.errors import exit_with_errors
from xray_exp.mlops.upload import main

if __name__ == "__main__":
    if sys.argv[1:2] != ["upload"]:
        exit_with_errors(
            ["usage: python -m xray_exp.tracking upload <run_dir> (now: python -m xray_exp.upload <run_dir>)"]
        )
    raise SystemExit(main(sys.argv[2:], prog="python -m xray_exp.tracking upload"))
