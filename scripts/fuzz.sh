#!/usr/bin/env bash
# Runs every Go fuzz target for ${FUZZTIME:-10s}, one after the other (go test fuzzes one
# target per invocation). A failing input is written under the package's testdata/fuzz/ and
# the script stops with go test's exit status.
#   bash scripts/fuzz.sh               10s per target
#   FUZZTIME=2m bash scripts/fuzz.sh   longer runs
#   FUZZTIME=20000x bash scripts/fuzz.sh a number of runs per target (what the test command does)
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-10s}"
targets=(
  "./pkg/settings/ FuzzLoad"
  "./pkg/wiz/ FuzzDecodeEntry"
  "./pkg/wiz/ FuzzParseTimestamp"
  "./pkg/wiz/ FuzzGraphQLResponse"
  "./pkg/query/ FuzzParse"
)
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "=== fuzz $name in $pkg for $fuzztime"
  # Minimising a new input can take long for the slower targets (an HTTP round trip per run);
  # bounding it by runs keeps a short fuzz run short.
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "${FUZZMINIMIZETIME:-200x}" "$pkg"
done
