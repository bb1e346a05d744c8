"""Run one benchmark: python -m xray_exp.bench <name> [options] (names: overhead startup prepare inference loader gpu
bootstrap).

    python -m xray_exp.bench overhead --reps 4
    python -m xray_exp.bench gpu --help
"""

from __future__ import annotations

import importlib
import sys

from xray_exp.bench import BENCHMARKS


def bench_usage() -> str:
    names = "\n".join(f"  {name:10s} python -m xray_exp.bench {name} --help" for name in BENCHMARKS)
    return f"usage: python -m xray_exp.bench <name> [options]\n\nbenchmarks:\n{names}\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(bench_usage(), end="")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}\n\n{bench_usage()}", end="", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[name])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
