#!/usr/bin/env bash
# A long property-based fuzzing run of the API: every operation of the server's own OpenAPI
# document, EXAMPLES generated requests each (valid and invalid), against a real server with
# auth on, with a fresh random seed. Prints the answers per operation; fails on any 5xx or any
# answer that breaks its documented schema (operations marked as known bugs in the test file
# are reported as xfail).
#
#   scripts/fuzz-api.sh            # 300 examples per operation
#   EXAMPLES=2000 scripts/fuzz-api.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
MLWARDEN_FUZZ_EXAMPLES="${EXAMPLES:-300}" MLWARDEN_FUZZ_DERANDOMIZE=0 \
    exec "$PYTHON" -m pytest tests/api/test_api_fuzz.py -p no:cacheprovider -q -s -rxX "$@"
