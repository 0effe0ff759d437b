#!/usr/bin/env bash
# Tests scripts/server.sh without Docker and without Grafana:
#  1. with neither, it says what to install and fails;
#  2. with a stand-in GRAFANA_BIN that checks the config it is given and serves nothing, it builds,
#     starts the demo tenant and the stand-in, prints the URL, and Ctrl-C (SIGINT to its process
#     group, as a terminal sends it) stops both processes and removes the throwaway folder.
# Builds the frontend and the backend like `npm run server`, so it takes a few minutes.
set -euo pipefail
set -m # background jobs get their own process group and keep SIGINT, like a terminal's
cd "$(dirname "$0")/.."

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail() {
  echo "FAIL: $*" >&2
  [[ -f $t/out ]] && sed 's/^/  | /' "$t/out" >&2
  exit 1
}

# A docker that finds no engine, first on the PATH.
mkdir -p "$t/stubs" "$t/home/bin" "$t/home/conf"
printf '#!/bin/sh\nexit 1\n' >"$t/stubs/docker"
chmod +x "$t/stubs/docker"

echo "1. neither Docker nor Grafana"
if command -v grafana >/dev/null; then
  echo "   skipped: grafana is on the PATH"
elif PATH="$t/stubs:$PATH" GRAFANA_BIN='' bash scripts/server.sh >"$t/out" 2>&1; then
  fail "server.sh succeeded without Docker and Grafana"
else
  grep -q 'docker info' "$t/out" || fail "the message does not name Docker's check"
  grep -q 'GRAFANA_BIN=/path/to/grafana' "$t/out" || fail "the message does not say how to point at Grafana"
  echo "   ok"
fi

echo "2. a stand-in Grafana"
touch "$t/home/conf/defaults.ini"
cat >"$t/home/bin/grafana" <<'EOF'
#!/usr/bin/env bash
# Checks the command line and config that server.sh gives Grafana, then serves nothing.
set -euo pipefail
[[ $1 == server && $2 == --homepath && $4 == --config ]] || { echo "stand-in: bad arguments: $*"; exit 2; }
home=$3 ini=$5 run=$(dirname "$5")
check() { grep -qxF "$1" "$ini" || { echo "stand-in: no line '$1' in $ini"; exit 2; }; }
[[ -f $home/conf/defaults.ini ]] || { echo "stand-in: bad home $home"; exit 2; }
check "plugins = $run/plugins"
check "provisioning = $run/provisioning"
check "allow_loading_unsigned_plugins = seed-wizauditlogs-datasource"
check "[plugin.seed-wizauditlogs-datasource]"
check "cache_dir = $run/cache"
check "admin_user = admin"
check "enabled = true"
check "org_role = Admin"
plugin=$run/plugins/seed-wizauditlogs-datasource
[[ -f $plugin/plugin.json && -f $plugin/module.js ]] || { echo "stand-in: no built frontend in $plugin"; exit 2; }
ls "$plugin"/gpx_wizauditlogs_* >/dev/null || { echo "stand-in: no backend binary in $plugin"; exit 2; }
[[ -f $run/provisioning/datasources/datasources.yml ]] || { echo "stand-in: no data sources"; exit 2; }
dashboards=$(sed -n 's/^ *path: //p' "$run/provisioning/dashboards/dashboards.yml")
ls "$dashboards"/*.json >/dev/null || { echo "stand-in: no dashboards in '$dashboards'"; exit 2; }
echo "$run" >"$STANDIN_OUT/run"
echo $$ >"$STANDIN_OUT/pid"
exec sleep 3600
EOF
chmod +x "$t/home/bin/grafana"

PATH="$t/stubs:$PATH" GRAFANA_BIN="$t/home/bin/grafana" STANDIN_OUT="$t" bash scripts/server.sh >"$t/out" 2>&1 &
server=$!
for _ in $(seq 900); do # the builds take minutes on a small machine
  [[ -f $t/pid ]] && grep -q '^Grafana: http://localhost:3000 ' "$t/out" && break
  kill -0 "$server" 2>/dev/null || fail "server.sh stopped"
  sleep 1
done
[[ -f $t/pid ]] || fail "the stand-in never accepted its config"
grafana_pid=$(cat "$t/pid") run=$(cat "$t/run")
for _ in $(seq 120); do # the demo tenant generates its events before it listens
  curl -s -o /dev/null http://127.0.0.1:8090/ && break
  sleep 1
done
token=$(curl -s -d grant_type=client_credentials -d client_id=demo-client-id \
  -d client_secret=demo-client-secret -d audience=wiz-api http://127.0.0.1:8090/oauth/token)
[[ $token == *access_token* ]] || fail "the demo tenant does not issue a token: $token"

kill -INT -- -"$server" # Ctrl-C
for _ in $(seq 30); do
  kill -0 "$server" 2>/dev/null || break
  sleep 1
done
kill -0 "$server" 2>/dev/null && fail "server.sh still runs 30 s after Ctrl-C"
kill -0 "$grafana_pid" 2>/dev/null && fail "Grafana (pid $grafana_pid) still runs"
curl -s -o /dev/null http://127.0.0.1:8090/ && fail "the demo tenant still answers"
[[ -e $run ]] && fail "the throwaway folder $run is still there"
echo "   ok"
