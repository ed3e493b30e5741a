#!/usr/bin/env bash
# Fuzzes the HTTP API with schemathesis against the OpenAPI document it serves
# (docs/openapi.json): generated valid and invalid requests for every operation, plus
# stateful sequences (create a session, then fork it, ...). Fails on any 5xx answer or a
# dropped connection. Real jails run behind it.
#
#   scripts/api-fuzz.sh [--max-examples N]      (default 25 per operation)
#
# Needs a built sealbox (.build/debug, or SEALBOX_BIN) and schemathesis in the venv that
# scripts/setup.sh makes (SEALBOX_VENV, default /var/cache/sealbox/venv).
set -euo pipefail
cd "$(dirname "$0")/.."

max_examples=25
while (($#)); do
    case "$1" in
        --max-examples) max_examples="$2"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "api-fuzz: unknown argument $1" >&2; exit 2 ;;
    esac
done

bin="${SEALBOX_BIN:-.build/debug/sealbox}"
st="${SEALBOX_VENV:-/var/cache/sealbox/venv}/bin/st"
[ -x "$bin" ] || { echo "api-fuzz: no sealbox at $bin (run swift build)" >&2; exit 1; }
[ -x "$st" ] || { echo "api-fuzz: no schemathesis at $st (run scripts/setup.sh)" >&2; exit 1; }

state="$(mktemp -d /tmp/sealbox-fuzz.XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" serve --state-dir "$state" --listen "127.0.0.1:$port" --shutdown-grace 5 2>"$state/serve.log" &
server=$!
cleanup() {
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$state"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$state/serve.log" >&2; echo "api-fuzz: the server did not start" >&2; exit 1; }
    sleep 0.1
done

# The operator key the first start wrote: without it every request would stop at 401 and the
# fuzz would reach no handler.
[ -s "$state/api-key" ] || { cat "$state/serve.log" >&2; echo "api-fuzz: serve wrote no $state/api-key" >&2; exit 1; }
auth=(-H "Authorization: Bearer $(cat "$state/api-key")")
status_code="$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "http://127.0.0.1:$port/v1/profiles")"
[ "$status_code" = 200 ] || { echo "api-fuzz: the key does not work (GET /v1/profiles: $status_code)" >&2; exit 1; }

# One worker: schemathesis' coverage phase is not thread-safe on CPython 3.11 (it fails with
# "AST constructor recursion depth mismatch" under --workers 2).
set +e
"$st" run "http://127.0.0.1:$port/openapi.json" "${auth[@]}" \
    --checks not_a_server_error --max-examples "$max_examples" --workers 1 --seed 1 \
    --suppress-health-check too_slow
status=$?
set -e
if ! kill -0 "$server" 2>/dev/null; then
    echo "api-fuzz: the server died during the fuzz run" >&2
    cat "$state/serve.log" >&2
    exit 1
fi
exit $status
