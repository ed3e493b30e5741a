#!/usr/bin/env bash
# A local, offline tour of the broker: a jailed snippet creates a ticket through an http tool
# whose bearer token only the broker holds; the agent "crashes" and runs the same snippet
# again in the same session; the world still received exactly one request. Run as root.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
demo="$(mktemp -d /tmp/sealbox-demo-XXXXXX)"
port=$((20000 + RANDOM % 20000))
export DEMO_API_TOKEN="demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

python3 "$root/examples/demo_world.py" "$port" &
world=$!
trap 'kill $world 2>/dev/null; rm -rf "$demo"' EXIT

cat > "$demo/broker.yaml" <<YAML
ledger: $demo/ledger.sqlite
secrets:
  api: { env: DEMO_API_TOKEN }
tools:
  create_ticket:
    kind: http
    method: POST
    url: "http://127.0.0.1:$port/tickets"
    allow_hosts: ["127.0.0.1"]
    headers: { Authorization: "Bearer {secret:api}" }
    args: { title: { type: string, max_length: 200 } }
    effect: irreversible
YAML

snippet='
import os, sealbox
print("jail sees the secret:", "DEMO_API_TOKEN" in os.environ)
r = sealbox.call("create_ticket", {"title": "disk full on db-3"})
print("ticket", r["body"]["ticket"], "authorized", r["body"]["authorized"], "replayed", sealbox.last_effect["replayed"])
'
for attempt in 1 2; do
    echo "== run $attempt of the same snippet in session demo-1"
    "$root/scripts/run.sh" run --tools "$demo/broker.yaml" --allow create_ticket --session demo-1 --lang python --code "$snippet"
done
echo "== the effect log"
"$root/scripts/run.sh" log list --ledger "$demo/ledger.sqlite"
"$root/scripts/run.sh" log verify --ledger "$demo/ledger.sqlite"
