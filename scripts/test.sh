#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every test of the project.
#   bash scripts/test.sh            everything, including the release cross builds
#   QUICK=1 bash scripts/test.sh    skips the cross builds (the tests only launch the native binary)
set -euo pipefail
cd "$(dirname "$0")/.."
# SQLite with its full-text index (FTS5), as the Magefile builds it.
export CGO_CFLAGS="-O2 -g -DSQLITE_ENABLE_FTS5" CGO_LDFLAGS="-lm"
step() { printf '\n=== %s (%ss)\n' "$*" "$SECONDS"; }

step "system packages"
# postgresql: the PostgreSQL store's tests start a throwaway cluster of their own (the
# package's default cluster is not used).
need=()
for pkg in gcc gcc-aarch64-linux-gnu gcc-mingw-w64-x86-64 postgresql; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

step "dependencies"
npm ci --no-audit --no-fund --loglevel=error
go mod download

step "go format, module files and vet"
if ! tidy=$(go mod tidy -diff); then
  echo "go.mod or go.sum is not tidy: run go mod tidy and commit the result. It would change:"
  echo "$tidy"
  exit 1
fi
unformatted=$(gofmt -l pkg Magefile.go)
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted"
  exit 1
fi
go vet ./pkg/...

step "frontend: typecheck, lint, unit tests, build"
npm run typecheck
npm run lint
npm run test:ci
npm run build

step "backend build"
if [ "${QUICK:-}" = 1 ]; then
  go tool mage -v native
else
  go tool mage -v
fi

step "go tests (unit, and integration through the built binary)"
go test -count=1 -timeout 20m ./pkg/...

step "short fuzz run of every fuzz target"
# A count of runs rather than a duration: a duration can end while the fuzzer is minimising a
# new input, which go test then reports as a failure.
FUZZTIME="${FUZZTIME:-20000x}" bash scripts/fuzz.sh

step "done"
