#!/usr/bin/env python3
"""A stand-in for a real API, on 127.0.0.1: creates "tickets", checks the bearer token it
was given, and counts every request it really received (printed on exit)."""
import http.server, json, sys, os

EXPECTED = "Bearer " + os.environ["DEMO_API_TOKEN"]
received = []

class World(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok = self.headers.get("Authorization") == EXPECTED
        received.append(self.path)
        answer = json.dumps({"ticket": len(received), "authorized": ok}).encode()
        self.send_response(201 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        print("world: %s %s (credential %s, idempotency key %s)" % (self.command, self.path,
              "accepted" if ok else "WRONG", self.headers.get("Idempotency-Key")), file=sys.stderr, flush=True)

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), World)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
