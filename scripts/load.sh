#!/usr/bin/env bash
# Load test of `sealbox serve` on this machine: builds sealbox in release mode when the
# sources are newer than the binary, starts `serve` on a free loopback port with a fresh
# --state-dir, waits for /healthz, runs `sealbox bench load` twice (python `print(6*7)`, then
# /bin/true), prints both reports, stops the server with SIGTERM and checks it exited 0.
#
#   scripts/load.sh [--count N] [--concurrency N] [--max-concurrent N] [--json-dir DIR]
#
# Defaults: 1000 runs per pass, 16 in flight, the server's default --max-concurrent (the
# number of CPUs) and --max-queued 64, so nothing is refused at concurrency 16. With
# --json-dir the two JSON reports and the server's log (JSON lines) are kept there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

count=1000
concurrency=16
server_flags=()
json_dir=""
while (($#)); do
    case "$1" in
        --count) count="$2"; shift 2 ;;
        --concurrency) concurrency="$2"; shift 2 ;;
        --max-concurrent) server_flags+=(--max-concurrent "$2"); shift 2 ;;
        --json-dir) json_dir="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "load: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

source scripts/setup.sh
binary="$root/.build/release/sealbox"
if [ ! -x "$binary" ] || [ -n "$(find Package.swift Sources -newer "$binary" -print -quit)" ]; then
    printf 'load: building sealbox (release)...\n' >&2
    swift build -c release >&2
fi
export SEALBOX_DATA_DIR="$root"

state="$(mktemp -d /tmp/sealbox-load.XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
# Auth stays on: the load runs with a tenant key made below, as a client of the service would.
"$binary" serve --state-dir "$state" --listen "127.0.0.1:$port" "${server_flags[@]}" 2>"$state/serve.log" &
server=$!
cleanup() {
    if kill -0 "$server" 2>/dev/null; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    if [ -n "$json_dir" ]; then mkdir -p "$json_dir" && cp "$state/serve.log" "$json_dir/serve.log" 2>/dev/null || true; fi
    rm -rf "$state"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
    curl -s -o /dev/null "$url/healthz" && break
    kill -0 "$server" 2>/dev/null || { cat "$state/serve.log" >&2; echo "load: the server did not start" >&2; exit 1; }
    sleep 0.1
done
curl -s -o /dev/null "$url/healthz" || { echo "load: the server did not answer /healthz within 30 s" >&2; exit 1; }

(umask 077 && "$binary" keys create --state-dir "$state" --tenant load --name scripts/load.sh >"$state/load.key" 2>/dev/null) \
    || { echo "load: sealbox keys create failed" >&2; exit 1; }
auth=(--key-file "$state/load.key")

printf 'load: serve at %s (%s), %s runs per pass, %s in flight\n' "$url" "$(curl -s "$url/healthz")" "$count" "$concurrency"
status=0
# One pass: the text report, or with --json-dir the JSON report shown and kept.
pass() {
    local name="$1"; shift
    echo
    if [ -n "$json_dir" ]; then
        mkdir -p "$json_dir"
        "$binary" bench load --url "$url" "${auth[@]}" --count "$count" --concurrency "$concurrency" --json "$@" \
            | tee "$json_dir/$name.json" || status=1
    else
        "$binary" bench load --url "$url" "${auth[@]}" --count "$count" --concurrency "$concurrency" "$@" || status=1
    fi
}
pass python --lang python --code 'print(6*7)'
pass true -- /bin/true

echo
kill -TERM "$server"
set +e
wait "$server"
exit_status=$?
set -e
runs_logged="$(grep -c '"msg":"run finished"' "$state/serve.log" || true)"
if [ "$exit_status" -ne 0 ]; then
    echo "load: serve exited with status $exit_status after SIGTERM (log tail below)" >&2
    tail -n 20 "$state/serve.log" >&2
    status=1
else
    echo "load: serve stopped cleanly on SIGTERM (exit 0); it logged $runs_logged finished runs"
fi
exit "$status"
