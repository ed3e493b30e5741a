#!/usr/bin/env python3
"""Checks both MCP transports of sealbox with the official MCP Python SDK (`mcp`, pinned in
scripts/python-tools.txt): `sealbox mcp` over stdio, and `sealbox serve` at /mcp over
Streamable HTTP with an API key.

    /var/cache/sealbox/venv/bin/python scripts/mcp_transport_check.py --sealbox .build/debug/sealbox --transport stdio
    /var/cache/sealbox/venv/bin/python scripts/mcp_transport_check.py --sealbox .build/debug/sealbox --transport http

Each transport: initialize, tools/list, run_code, a bad argument refused naming the field,
stdout as coalesced progress notifications, and cancellation: a run_code sleeping in its jail
is cancelled (the SDK sends notifications/cancelled) and the jail's process must be gone
within 100 ms, measured on a pidfd of the jailed process. Over HTTP also: no key is 401, a
session of one key is invisible to another key (404), and a tenant sees only its sessions.
Prints one line per check and the measured cancel-to-gone time; exits 1 on the first failure.
"""

import argparse
import asyncio
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

# The bound the issue sets: a cancelled call's jail is gone within this many seconds.
CANCEL_BOUND_S = 0.100
TOOLS = ["run_code", "create_session", "session_facts", "list_effects",
         "create_sandbox", "sandbox_exec", "sandbox_run_code", "sandbox_write_file", "sandbox_read_file", "sandbox_list_files", "kill_sandbox"]


class CheckFailed(Exception):
    pass


def check(condition, what, detail=""):
    if not condition:
        raise CheckFailed(what + (": " + str(detail) if detail != "" else ""))
    print("ok   " + what, flush=True)


def text_of(result):
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")


def find_process(argv, deadline_s=10.0):
    """The host pid of the process whose argv is exactly `argv` (a jailed process is visible in
    the host's /proc under its host pid). Bounded: None after `deadline_s`."""
    wanted = ("\0".join(argv) + "\0").encode()
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read() == wanted:
                        return int(entry)
            except OSError:
                continue
        time.sleep(0.01)
    return None


def wait_gone(pidfd, timeout_s):
    """Seconds until the process of `pidfd` exits (the pidfd turns readable), or None."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    start = time.monotonic()
    if not poller.poll(int(timeout_s * 1000)):
        return None
    return time.monotonic() - start


async def common_checks(session, label):
    init = await session.initialize()
    check(init.server_info.name == "sealbox", f"{label}: initialize answers as sealbox", init.server_info)
    check(init.capabilities.tools is not None, f"{label}: the tools capability is announced")

    listed = (await session.list_tools()).tools
    check(sorted(t.name for t in listed) == sorted(TOOLS), f"{label}: tools/list has sealbox's tools", [t.name for t in listed])

    result = await session.call_tool("run_code", {"language": "python", "code": "print(6*7)"}, read_timeout_seconds=120)
    check(not result.is_error and result.structured_content["stdout"] == "42\n", f"{label}: run_code prints 42", text_of(result))

    bad = await session.call_tool("run_code", {"language": "python", "code": "pass", "limits": {"memory_bytes": "lots"}})
    check(bad.is_error and "limits.memory_bytes" in text_of(bad), f"{label}: a bad argument is refused naming limits.memory_bytes", text_of(bad))
    bad = await session.call_tool("run_code", {"language": "python", "code": "pass", "timeout": 5})
    check(bad.is_error and '"timeout"' in text_of(bad), f"{label}: an unknown argument is refused naming it", text_of(bad))

    # Progress: a program writing one byte at a time gets a handful of notifications, not
    # one per write; each carries the stdout bytes so far and the newest text.
    updates = []

    async def on_progress(progress, total, message):
        updates.append((progress, message))

    code = "import sys, time\nfor i in range(3000):\n    sys.stdout.write('x'); sys.stdout.flush()\n    if i % 500 == 0: time.sleep(0.1)\nprint()\n"
    result = await session.call_tool("run_code", {"language": "python", "code": code}, read_timeout_seconds=120, progress_callback=on_progress)
    check(not result.is_error and result.structured_content["stdout_bytes"] == 3001, f"{label}: the byte-at-a-time run finished", text_of(result))
    check(len(updates) >= 1, f"{label}: stdout came as progress notifications", updates)
    check(len(updates) <= 30, f"{label}: progress is coalesced ({len(updates)} notifications for 3001 writes)", len(updates))
    values = [p for p, _ in updates]
    check(values == sorted(values) and 0 < values[-1] <= 3001, f"{label}: progress counts stdout bytes, increasing", values)
    check(all(m and set(m.strip()) <= {"x"} for _, m in updates), f"{label}: each progress message is the newest output", updates[:3])

    # Cancellation: the run says it is ready (as progress), then sleeps; the client abandons
    # the call, and the jailed sleep must be gone within the bound.
    marker = str(31000 + os.getpid() % 1000)
    ready = anyio.Event()

    async def on_ready(progress, total, message):
        ready.set()

    outcome = {}
    scope = anyio.CancelScope()

    async def doomed():
        with scope:
            outcome["result"] = await session.call_tool(
                "run_code", {"language": "sh", "code": f"echo ready; exec sleep {marker}"}, read_timeout_seconds=120,
                progress_callback=on_ready)

    async with anyio.create_task_group() as group:
        group.start_soon(doomed)
        with anyio.fail_after(60):
            await ready.wait()
        pid = await anyio.to_thread.run_sync(find_process, ["sleep", marker])
        check(pid is not None, f"{label}: the jailed sleep is visible in the host's /proc")
        pidfd = os.pidfd_open(pid)
        try:
            scope.cancel()
            gone = await anyio.to_thread.run_sync(wait_gone, pidfd, 5.0)
        finally:
            os.close(pidfd)
    check("result" not in outcome, f"{label}: the cancelled call got no result")
    check(gone is not None, f"{label}: the cancelled jail's process exited")
    print(f"measure {label}: cancel-to-gone {gone * 1000:.1f} ms", flush=True)
    check(gone <= CANCEL_BOUND_S, f"{label}: the cancelled jail was gone within {CANCEL_BOUND_S * 1000:.0f} ms ({gone * 1000:.1f} ms)")

    # The session carries on after a cancellation.
    result = await session.call_tool("run_code", {"language": "sh", "code": "echo still-here"}, read_timeout_seconds=120)
    check(result.structured_content["stdout"] == "still-here\n", f"{label}: the next call after a cancellation runs", text_of(result))


async def stdio_checks(sealbox, state_dir):
    env = {k: v for k, v in os.environ.items() if k == "SEALBOX_DATA_DIR"}
    params = StdioServerParameters(command=sealbox, args=["mcp", "--state-dir", state_dir], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await common_checks(session, "stdio")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url, key=None, method="GET", body=None, headers=None):
    request = urllib.request.Request(url, method=method, data=body, headers=dict(headers or {}))
    if key:
        request.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def http_checks(sealbox, state_dir):
    port = free_port()
    log_path = os.path.join(os.path.dirname(state_dir), "serve.log")
    log = open(log_path, "wb")
    server = subprocess.Popen([sealbox, "serve", "--state-dir", state_dir, "--listen", f"127.0.0.1:{port}", "--shutdown-grace", "2"],
                              stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http_status(base + "/healthz")[0] == 200 and os.path.exists(os.path.join(state_dir, "api-key")):
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise CheckFailed("sealbox serve did not start: " + open(log_path, errors="replace").read())
            time.sleep(0.05)
        operator_key = open(os.path.join(state_dir, "api-key")).read().strip()
        keys = {}
        for tenant in ["alice", "bob"]:
            made = subprocess.run([sealbox, "keys", "create", "--state-dir", state_dir, "--tenant", tenant],
                                  capture_output=True, text=True, check=True)
            keys[tenant] = made.stdout.strip()

        initialize = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}).encode()
        mcp_headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        status, _ = http_status(base + "/mcp", None, "POST", initialize, mcp_headers)
        check(status == 401, "http: POST /mcp without a key is 401", status)
        status, _ = http_status(base + "/mcp", "sbx_not-a-key", "POST", initialize, mcp_headers)
        check(status == 401, "http: POST /mcp with an unknown key is 401", status)
        status, body = http_status(base + "/mcp", keys["alice"], "POST", b'{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}', mcp_headers)
        check(status == 400 and b"duplicate" in body, "http: a body with a duplicate member name is refused", body)
        status, body = http_status(base + "/mcp", keys["alice"], "POST", b"x" * (9 << 20), mcp_headers)
        check(status == 413, "http: a body over the API's limit is 413", status)

        # The official client, as alice.
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer " + keys["alice"]}, timeout=httpx2.Timeout(30, read=300)) as client:
            async with streamable_http_client(base + "/mcp", http_client=client) as (read, write, *_):
                async with ClientSession(read, write) as session:
                    await common_checks(session, "http")
                    created = await session.call_tool("create_session", {})
                    check(not created.is_error, "http: create_session as alice", text_of(created))
                    alice_session = created.structured_content["session"]
                    step = await session.call_tool("run_code", {"language": "sh", "code": "echo one > f; cat f", "session": alice_session, "step": "one"},
                                                   read_timeout_seconds=120)
                    check(step.structured_content["stdout"] == "one\n", "http: a session step runs", text_of(step))
                    facts = await session.call_tool("session_facts", {"session": alice_session})
                    check(not facts.is_error and [s["step"] for s in facts.structured_content["true"]["steps"]] == ["one"],
                          "http: session_facts shows alice's sealed step", text_of(facts))

        # bob cannot see or use alice's session, through MCP as through the API.
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer " + keys["bob"]}, timeout=httpx2.Timeout(30, read=300)) as client:
            async with streamable_http_client(base + "/mcp", http_client=client) as (read, write, *_):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    facts = await session.call_tool("session_facts", {"session": alice_session})
                    check(facts.is_error and "not_found" in text_of(facts), "http: bob's session_facts of alice's session is not_found", text_of(facts))
                    run = await session.call_tool("run_code", {"language": "sh", "code": "cat f", "session": alice_session, "step": "peek"},
                                                  read_timeout_seconds=120)
                    check(run.is_error and "not_found" in text_of(run), "http: bob cannot run a step in alice's session", text_of(run))
        status, _ = http_status(base + f"/v1/sessions/{alice_session}/facts", keys["bob"])
        check(status == 404, "http: the API agrees (GET facts of alice's session as bob is 404)", status)
        status, _ = http_status(base + f"/v1/sessions/{alice_session}/facts", keys["alice"])
        check(status == 200, "http: the session made over MCP is alice's in the API too", status)

        # An MCP session belongs to the key that opened it: another key gets 404.
        request = urllib.request.Request(base + "/mcp", method="POST", data=initialize, headers={**mcp_headers, "Authorization": "Bearer " + keys["alice"]})
        with urllib.request.urlopen(request, timeout=30) as response:
            session_id = response.headers["Mcp-Session-Id"]
            response.read()
        check(bool(session_id), "http: initialize answers with an Mcp-Session-Id")
        ping = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"}).encode()
        headers = {**mcp_headers, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-11-25"}
        status, _ = http_status(base + "/mcp", keys["bob"], "POST", ping, headers)
        check(status == 404, "http: bob's request on alice's MCP session is 404", status)
        status, body = http_status(base + "/mcp", keys["alice"], "POST", ping, headers)
        check(status == 200 and b'"result"' in body, "http: alice's ping on her session is answered", body)
        status, _ = http_status(base + "/mcp", keys["alice"], "DELETE", None, headers)
        check(status == 200, "http: DELETE ends the session", status)
        status, _ = http_status(base + "/mcp", keys["alice"], "POST", ping, headers)
        check(status == 404, "http: an ended session is 404", status)
        check(server.poll() is None, "http: the server is still running")
        del operator_key
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sealbox", required=True, help="path to the sealbox binary")
    parser.add_argument("--transport", choices=["stdio", "http"], required=True)
    options = parser.parse_args()
    sealbox = os.path.abspath(options.sealbox)
    tmp = tempfile.mkdtemp(prefix="sealbox-mcp-transport-")
    try:
        if options.transport == "stdio":
            asyncio.run(stdio_checks(sealbox, os.path.join(tmp, "state")))
        else:
            asyncio.run(http_checks(sealbox, os.path.join(tmp, "state")))
    except CheckFailed as failure:
        print(f"FAIL {failure}", flush=True)
        log = os.path.join(tmp, "serve.log")
        if os.path.exists(log):
            print("serve.log (tail):\n" + open(log, errors="replace").read()[-4000:], flush=True)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"mcp transport check ({options.transport}): all passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
