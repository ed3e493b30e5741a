#!/usr/bin/env bash
# The migration story, offline: an agent migrates a service in four steps of one session.
# Step "truncate" empties the old orders table and step "cutover" moves DNS; both are
# irreversible. The agent crashes (kill -9) in the next step. It resumes by re-running its
# plan from the top: sealed steps are replayed from their checkpoints, so the table is
# truncated once and DNS cut over once; `sealbox session facts` tells the operator where the
# session stands before and after. The "world" is examples/migration_world.py on loopback.
# Run as root: scripts/run.sh builds sealbox first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/run.sh" --help >/dev/null   # builds the release binary if needed
sealbox="$root/.build/release/sealbox"
export SEALBOX_DATA_DIR="$root"
demo="$(mktemp -d /tmp/sealbox-migration-XXXXXX)"
port=$((20000 + RANDOM % 20000))
export MIGRATION_API_TOKEN="mig-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

python3 "$root/examples/migration_world.py" "$port" &
world=$!
trap 'kill $world 2>/dev/null; rm -rf "$demo"' EXIT
for _ in $(seq 50); do curl -s "http://127.0.0.1:$port/_counts" >/dev/null && break; sleep 0.1; done

cat > "$demo/broker.yaml" <<YAML
ledger: $demo/ledger.sqlite
secrets:
  api: { env: MIGRATION_API_TOKEN }
tools:
  orders_count:
    kind: http
    method: GET
    url: "http://127.0.0.1:$port/db/orders/count"
    allow_hosts: ["127.0.0.1"]
    headers: { Authorization: "Bearer {secret:api}" }
    effect: read
  backup_orders:
    kind: http
    method: POST
    url: "http://127.0.0.1:$port/db/orders/backup"
    allow_hosts: ["127.0.0.1"]
    headers: { Authorization: "Bearer {secret:api}" }
    idempotency_header: Idempotency-Key
    effect: idempotent
  truncate_orders:
    kind: http
    method: POST
    url: "http://127.0.0.1:$port/db/orders/truncate"
    allow_hosts: ["127.0.0.1"]
    headers: { Authorization: "Bearer {secret:api}" }
    effect: irreversible
  dns_cutover:
    kind: http
    method: POST
    url: "http://127.0.0.1:$port/dns/cutover"
    allow_hosts: ["127.0.0.1"]
    headers: { Authorization: "Bearer {secret:api}" }
    body: json
    args:
      name: { type: string, pattern: "^[a-z0-9.-]{1,253}$" }
      target: { type: string, pattern: "^[0-9.]{7,15}$" }
    effect: irreversible
  dns_lookup:
    kind: http
    method: GET
    url: "http://127.0.0.1:$port/dns/{name}"
    allow_hosts: ["127.0.0.1"]
    headers: { Authorization: "Bearer {secret:api}" }
    args: { name: { type: string, pattern: "^[a-z0-9.-]{1,253}$" } }
    effect: read
YAML

checkpoints="$demo/checkpoints.sqlite"
tools=(--tools "$demo/broker.yaml" --allow orders_count --allow backup_orders --allow truncate_orders --allow dns_cutover --allow dns_lookup)
session=$("$sealbox" session new --checkpoints "$checkpoints")
echo "== session $session"

# The agent's plan: four steps, each a Python snippet run in a fresh jail with the session's /work.
backup='
import json, sealbox
count = sealbox.call("orders_count")["body"]["rows"]
backup = sealbox.call("backup_orders")["body"]
json.dump({"rows": count, "backup": backup["backup"]}, open("/work/backup.json", "w"))
print("orders has", count, "rows; backup", backup["backup"])'
truncate='
import json, sealbox
plan = json.load(open("/work/backup.json"))
assert plan["rows"] > 0, "no backup recorded"
print("truncated:", sealbox.call("truncate_orders")["body"])'
cutover='
import sealbox
print("cut over:", sealbox.call("dns_cutover", {"name": "api.example.com", "target": "10.0.9.9"})["body"])'
verify='
import sealbox, time
print("dns now:", sealbox.call("dns_lookup", {"name": "api.example.com"})["body"]["target"], flush=True)
time.sleep(3)   # smoke-test the new host for a while (the first attempt is killed here)
open("/work/verified", "w").write("ok")'

step() {  # step KEY CODE
    "$sealbox" run --session "$session" --step "$1" --checkpoints "$checkpoints" "${tools[@]}" --lang python --code "$2"
}

for key in backup truncate cutover; do
    echo "== step $key"
    code_var="$key"; step "$key" "${!code_var}"
done

echo "== step verify: the agent crashes (kill -9) while it runs"
"$sealbox" run --session "$session" --step verify --checkpoints "$checkpoints" "${tools[@]}" --lang python --code "$verify" &
runner=$!
# Kill it once the step is under way: the world has seen its DNS lookup.
for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/_counts" | grep -q "GET /dns/" && break; sleep 0.1; done
kill -9 "$runner"; wait "$runner" 2>/dev/null || true
echo "(runner $runner killed with SIGKILL)"

echo "== sealbox session facts, after the crash"
"$sealbox" session facts "$session" --checkpoints "$checkpoints" --ledger "$demo/ledger.sqlite" || true

echo "== resume: the agent re-runs its whole plan"
for key in backup truncate cutover; do
    echo "== step $key (again)"
    code_var="$key"; "$sealbox" run --session "$session" --step "$key" --checkpoints "$checkpoints" "${tools[@]}" --lang python --code "${!code_var}" --json \
        | python3 -c 'import json,sys; r=json.load(sys.stdin); print("replayed:", r.get("replayed"), "checkpoint:", r.get("checkpoint"), "| sealed stdout:", r["stdout"].strip())'
done
echo "== step verify (again)"
step verify "$verify"

echo "== sealbox session facts, after the resume"
"$sealbox" session facts "$session" --checkpoints "$checkpoints" --ledger "$demo/ledger.sqlite"

echo "== what the world received"
curl -s "http://127.0.0.1:$port/_counts" | python3 -c 'import json,sys; [print("  %-28s %d" % kv) for kv in sorted(json.load(sys.stdin).items())]'
