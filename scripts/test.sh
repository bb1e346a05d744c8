#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: bash scripts/test.sh [pytest args]
# Without arguments: the tests not marked serial on XRAY_TEST_WORKERS (default 2) pytest-xdist workers, one test
# file per worker at a time (a file's module fixtures are built once), then the serial ones (Ray, clusters, timing
# assertions) alone. XRAY_TEST_WORKERS=1, or any pytest arguments: one plain pytest run.
# The browser test drives Debian's chromium, the egress test runs commands under strace (both installed
# here when missing and apt is usable; without them those tests are skipped); so are dicom3tools (dciodvfy) and
# Orthanc + its DICOMweb plugin for the DICOM SR and PACS tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "WARNING: could not install chromium; the browser test will be skipped"
fi
if ! command -v strace >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null) \
    || echo "WARNING: could not install strace; the egress test will be skipped"
fi
# DICOM SR checks run dciodvfy (dicom3tools); the PACS round trip starts Orthanc with its DICOMweb plugin.
if { ! command -v dciodvfy >/dev/null 2>&1 || ! command -v Orthanc >/dev/null 2>&1 \
     || [ ! -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; } \
   && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      dicom3tools orthanc orthanc-dicomweb >/dev/null) \
    || echo "WARNING: could not install dicom3tools/orthanc; the dciodvfy and PACS tests will be skipped"
fi
workers=${XRAY_TEST_WORKERS:-2}
if [ $# -gt 0 ] || [ "$workers" -le 1 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
status=0
.venv/bin/python -m pytest -n "$workers" --dist loadfile -m "not serial" || status=$?
.venv/bin/python -m pytest -m serial || status=$((status ? status : $?))
exit "$status"
