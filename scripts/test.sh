#!/usr/bin/env bash
# Set up (if needed) and run the test suite: bash scripts/test.sh [--quick] [pytest args]
# First, in seconds: `ruff check .`, `ruff format --check .` and `mypy` (pyproject's [tool.mypy]); a lint or type error stops everything.
# --quick: the unit tests only, for the edit loop (no root, no servers, browser, notebooks or trainings; under
# 2 minutes on 2 cores): the files and folders in QUICK below, minus the tests marked integration, slow, serial
# or cluster, on XRAY_TEST_WORKERS (default 2) pytest-xdist workers; pytest args after --quick are passed on.
# Without arguments: the tests not marked serial on XRAY_TEST_WORKERS pytest-xdist workers, one test file per
# worker at a time (a file's module fixtures are built once), then the serial ones (Ray, clusters, timing
# assertions) alone. XRAY_TEST_WORKERS=1, or any pytest arguments: one plain pytest run.
# The browser test drives Debian's chromium, the egress test runs commands under strace, the metrics test scrapes
# with Debian's prometheus, the DICOM SR checks run dciodvfy (dicom3tools) and the PACS round trip starts Orthanc
# with its DICOMweb plugin (all installed here when missing and apt is usable; without them those tests are skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=(
  tests/metrics tests/config tests/data tests/evaluation tests/runs/test_train_cli.py
  tests/prepare/test_prepare_units.py tests/prepare/test_dicom_decoding.py tests/distributed/test_ray_units.py
  tests/yolo/test_yolo_args.py tests/package/test_boundaries.py tests/package/test_package_names.py
  tests/package/test_deprecations.py tests/package/test_import_graph.py tests/package/test_architecture_map.py
  tests/package/test_entry_points.py
  tests/package/test_compat_scan.py tests/package/test_compat_omegaconf.py tests/package/test_compat_pydicom.py
  tests/package/test_compat_ray.py tests/package/test_compat_ultralytics.py
)
quick=0
if [ "${1:-}" = "--quick" ]; then
  quick=1
  shift
fi
bash scripts/setup.sh
echo "ruff check . && ruff format --check . && mypy"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
workers=${XRAY_TEST_WORKERS:-2}
if [ "$quick" = 1 ]; then
  parallel=()
  [ "$workers" -gt 1 ] && parallel=(-n "$workers" --dist loadfile)
  exec .venv/bin/python -m pytest "${parallel[@]}" -m "not integration and not slow and not serial and not cluster" \
    "${QUICK[@]}" "$@"
fi
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v strace >/dev/null 2>&1 || missing+=(strace)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v dciodvfy >/dev/null 2>&1 || missing+=(dicom3tools)
command -v Orthanc >/dev/null 2>&1 || missing+=(orthanc)
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing+=(orthanc-dicomweb)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      "${missing[@]}" >/dev/null) \
    || echo "WARNING: could not install ${missing[*]}; the tests that need them will be skipped"
fi
if [ $# -gt 0 ] || [ "$workers" -le 1 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
status=0
.venv/bin/python -m pytest -n "$workers" --dist loadfile -m "not serial" || status=$?
.venv/bin/python -m pytest -m serial || status=$((status ? status : $?))
exit "$status"
