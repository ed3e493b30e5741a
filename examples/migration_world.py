#!/usr/bin/env python3
"""A stand-in for the production world of a database migration, on 127.0.0.1: a database
API (row counts, an idempotent backup, an irreversible TRUNCATE) and a DNS API (lookup, an
irreversible cutover). It checks the bearer token and counts every request it receives;
GET /_counts returns the counts (the story script prints them at the end)."""
import http.server, json, os, sys, threading

EXPECTED = "Bearer " + os.environ["MIGRATION_API_TOKEN"]
lock = threading.Lock()
counts = {}
state = {"orders_rows": 1204, "dns": {"api.example.com": "10.0.0.5"}, "backups": {}}


class World(http.server.BaseHTTPRequestHandler):
    def reply(self, code, value):
        body = json.dumps(value).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_one(self, method):
        length = int(self.headers.get("Content-Length", 0) or 0)
        args = json.loads(self.rfile.read(length) or b"{}") if length else {}
        if self.path == "/_counts":
            with lock:
                return self.reply(200, counts)
        if self.headers.get("Authorization") != EXPECTED:
            return self.reply(401, {"error": "bad credential"})
        with lock:
            key = "%s %s" % (method, self.path.split("?")[0])
            counts[key] = counts.get(key, 0) + 1
            print("world: %s (request %d of its kind)" % (key, counts[key]), file=sys.stderr, flush=True)
            if key == "GET /db/orders/count":
                return self.reply(200, {"rows": state["orders_rows"]})
            if key == "POST /db/orders/backup":
                # Idempotent: the same Idempotency-Key returns the same backup.
                idem = self.headers.get("Idempotency-Key", "")
                backup = state["backups"].setdefault(idem, {"backup": "bk-%d" % (len(state["backups"]) + 1), "rows": state["orders_rows"]})
                return self.reply(200, backup)
            if key == "POST /db/orders/truncate":
                deleted, state["orders_rows"] = state["orders_rows"], 0
                return self.reply(200, {"truncated": "orders", "rows_deleted": deleted})
            if key == "POST /dns/cutover":
                old = state["dns"].get(args.get("name"))
                state["dns"][args.get("name")] = args.get("target")
                return self.reply(200, {"name": args.get("name"), "from": old, "to": args.get("target")})
            if key.startswith("GET /dns/"):
                name = self.path[len("/dns/"):]
                return self.reply(200, {"name": name, "target": state["dns"].get(name)})
        self.reply(404, {"error": "no such endpoint"})

    def do_GET(self):
        self.handle_one("GET")

    def do_POST(self):
        self.handle_one("POST")

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), World)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
