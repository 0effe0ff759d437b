#!/usr/bin/env bash
# `npm run server`: Grafana with this plugin, the provisioned data sources, dashboard and alert
# rules, and a demo Wiz tenant (pkg/cmd/wizfake) that the "Wiz Audit Logs (demo tenant)" data
# source syncs from.
#
# With a Docker engine: docker compose (docker-compose.yaml). Without one: a local Grafana
# (GRAFANA_BIN, else `grafana` on the PATH; its home from GRAFANA_HOME, else next to the binary)
# and the demo tenant run as local processes with a throwaway config; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly plugin_id=seed-wizauditlogs-datasource
readonly port=3000
# The demo tenant as the demo data source expects it (provisioning/datasources/datasources.yml).
readonly wizfake_args=(-addr 127.0.0.1:8090 -seed 1 -events 200000 -days 200 -live
  -client-id demo-client-id -client-secret demo-client-secret)

if docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  npm run build
  go tool mage -v
  exec docker compose up --build
fi

grafana_bin=${GRAFANA_BIN:-$(command -v grafana || true)}
if [[ -z $grafana_bin ]]; then
  cat >&2 <<EOF
npm run server needs one of:
  - Docker: the engine and the compose plugin, so that \`docker info\` and \`docker compose version\`
    both answer (https://docs.docker.com/engine/install/);
  - Grafana 12.3 or newer on this machine: install the grafana package
    (https://grafana.com/docs/grafana/latest/setup-grafana/installation/), or unpack the
    standalone tarball from https://grafana.com/grafana/download and set
    GRAFANA_BIN=/path/to/grafana-<version>/bin/grafana (or put its bin/ on the PATH).
EOF
  exit 1
fi
if [[ ! -x $grafana_bin ]]; then
  echo "GRAFANA_BIN=$grafana_bin is not an executable file" >&2
  exit 1
fi
grafana_home=${GRAFANA_HOME:-$(dirname "$(dirname "$(readlink -f "$grafana_bin")")")}
if [[ -z ${GRAFANA_HOME:-} && ! -f $grafana_home/conf/defaults.ini ]]; then
  grafana_home=/usr/share/grafana # where the Debian and RPM packages put it
fi
if [[ ! -f $grafana_home/conf/defaults.ini ]]; then
  echo "no conf/defaults.ini in $grafana_home: set GRAFANA_HOME to Grafana's home folder" >&2
  exit 1
fi

npm run build
go tool mage -v native

run=$(mktemp -d "${TMPDIR:-/tmp}/wizaudit-server.XXXXXX")
pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait
  rm -rf "$run"
}
trap stop EXIT
trap 'exit 130' INT TERM

go build -o "$run/wizfake" ./pkg/cmd/wizfake
"$run/wizfake" "${wizfake_args[@]}" &
pids+=($!)

# The plugin folder links to dist/; provisioning is the repository's, except the dashboard
# provider's path, which names the repository's folder instead of the container's.
mkdir -p "$run/plugins" "$run/provisioning/dashboards"
ln -s "$PWD/dist" "$run/plugins/$plugin_id"
ln -s "$PWD/provisioning/datasources" "$PWD/provisioning/alerting" "$run/provisioning/"
sed "s|/etc/grafana/provisioning/dashboards|$PWD/provisioning/dashboards|" \
  provisioning/dashboards/dashboards.yml >"$run/provisioning/dashboards/dashboards.yml"
cat >"$run/grafana.ini" <<EOF
[paths]
data = $run/data
logs = $run/logs
plugins = $run/plugins
provisioning = $run/provisioning

[server]
http_port = $port

[security]
admin_user = admin
admin_password = admin

[auth.anonymous]
enabled = true
org_role = Admin

[plugins]
allow_loading_unsigned_plugins = $plugin_id

[plugin.$plugin_id]
cache_dir = $run/cache
EOF

"$grafana_bin" server --homepath "$grafana_home" --config "$run/grafana.ini" &
pids+=($!)

echo "Grafana: http://localhost:$port (anonymous admin; login admin/admin). Ctrl-C stops Grafana and the demo tenant."
# Whichever stops first, the other is stopped too (by the EXIT trap).
wait -n
