#!/usr/bin/env bash
# Installs compgen with its test and bench extras (skipped when current), then runs the whole
# test suite in TEST_WORKERS (default 2) processes, one test file per worker at a time.
# Extra arguments go to pytest, e.g. `bash launch/test.sh -k sprites -x`.
# Fails on any test failure, and when no test was collected (pytest exit code 5).
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/python.sh
bash launch/install.sh test,bench
set +e
"$PYTHON" -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "launch/test.sh: pytest collected no tests; treating that as a failure." >&2
  exit 1
fi
exit "$rc"
