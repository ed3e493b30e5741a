#!/usr/bin/env python3
"""Checks `sealbox mcp` with a real MCP client: the official Python SDK (`mcp`, pinned in
scripts/python-tools.txt, installed by scripts/setup.sh into /var/cache/sealbox/venv).

    /var/cache/sealbox/venv/bin/python scripts/mcp_client_check.py --sealbox .build/debug/sealbox

Part 1 drives the server through the SDK's stdio client (`stdio_client` + `ClientSession`):
initialize, tools/list, tools/call of every tool, a session whose step is replayed, a tool call
through a broker, errors a model can read. Part 2 writes raw lines to a fresh server to check
what the SDK never sends: malformed JSON (-32700), unknown methods (-32601), version
negotiation. Prints one line per check; exits 1 on the first failure, naming it.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import textwrap

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

TOOLS = ["run_code", "create_session", "session_facts", "list_effects",
         "create_sandbox", "sandbox_exec", "sandbox_run_code", "sandbox_write_file", "sandbox_read_file", "sandbox_list_files", "kill_sandbox"]

# A broker tool that touches nothing outside: `stamp` echoes its argument. Idempotent, so
# a replayed step must answer from the effect log and not run it again.
BROKER_CONFIG = """\
tools:
  stamp:
    kind: command
    argv: [/bin/echo, "stamped {text}"]
    args: { text: { type: string, pattern: "^[a-z]{1,20}$" } }
    effect: idempotent
"""

STEP_CODE = textwrap.dedent("""\
    import sealbox
    answer = sealbox.call("stamp", {"text": "hello"})
    open("note.txt", "w").write(answer["stdout"])
    print(answer["stdout"].strip())
""")


class CheckFailed(Exception):
    pass


def check(condition, what, detail=""):
    if not condition:
        raise CheckFailed(what + (": " + str(detail) if detail != "" else ""))
    print("ok   " + what, flush=True)


def server_environment():
    # stdio_client passes only a safe default environment (PATH, HOME, ...); sealbox finds its
    # data directory next to its binary, or through SEALBOX_DATA_DIR when the caller set it.
    return {k: v for k, v in os.environ.items() if k == "SEALBOX_DATA_DIR"}


def text_of(result):
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")


async def call(session, tool, arguments):
    return await session.call_tool(tool, arguments, read_timeout_seconds=120)


async def sdk_checks(sealbox, state_dir, tools_file):
    params = StdioServerParameters(
        command=sealbox, args=["mcp", "--state-dir", state_dir, "--tools", tools_file, "--max-timeout", "60"],
        env=server_environment())
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.server_info.name == "sealbox", "initialize: serverInfo.name is sealbox", init.server_info)
            check(bool(init.server_info.version), "initialize: serverInfo.version is set")
            check(init.capabilities.tools is not None, "initialize: the tools capability is announced")
            check(init.protocol_version in ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"),
                  "initialize: a protocol version both sides speak", init.protocol_version)

            listed = (await session.list_tools()).tools
            by_name = {tool.name: tool for tool in listed}
            check(sorted(by_name) == sorted(TOOLS), "tools/list: exactly sealbox's tools", sorted(by_name))
            for name in TOOLS:
                tool = by_name[name]
                check(tool.input_schema.get("type") == "object" and "properties" in tool.input_schema,
                      f"tools/list: {name} has an object inputSchema")
                check((tool.output_schema or {}).get("type") == "object", f"tools/list: {name} has an object outputSchema")
                check(bool(tool.description), f"tools/list: {name} has a description")
            run_schema = by_name["run_code"].input_schema
            check(run_schema["required"] == ["language", "code"], "run_code requires language and code", run_schema.get("required"))
            check(run_schema["properties"]["limits"]["properties"]["timeout_ms"]["maximum"] == 60000,
                  "run_code's schema shows the operator's --max-timeout")

            # The SDK validates structuredContent against each tool's outputSchema: every
            # successful call below is also a check of the schemas.
            result = await call(session, "run_code", {"language": "python", "code": "print(6*7)"})
            check(not result.is_error, "run_code python print(6*7) succeeds", text_of(result))
            check(result.structured_content["stdout"] == "42\n", "run_code: structured stdout is 42", result.structured_content)
            check(result.structured_content["status"] == "ok" and result.structured_content["exit_code"] == 0,
                  "run_code: status ok, exit code 0")
            check("42" in text_of(result) and "status: ok" in text_of(result), "run_code: the text names the status and holds stdout")
            for key in ["id", "limits", "wall_ms", "peak_memory_bytes", "violations", "cgroup", "profile"]:
                check(key in result.structured_content, f"run_code: structured result has {key} (the `sealbox run --json` object)")

            result = await call(session, "run_code", {
                "language": "bash", "code": 'read line; echo "$1:$line:$GREETING:$(cat data.txt)"; exit 3', "args": ["arg"],
                "stdin": "from-stdin\n", "env": {"GREETING": "hi"},
                "files": [{"name": "data.txt", "content": "ZmlsZQ==", "encoding": "base64"}],
                "limits": {"timeout_ms": 5000, "memory_bytes": 134217728, "pids": 16}})
            check(not result.is_error, "run_code with args, stdin, env, files and limits runs", text_of(result))
            structured = result.structured_content
            check(structured["stdout"] == "arg:from-stdin:hi:file\n", "run_code: args, stdin, env and a base64 file reach the program", structured["stdout"])
            check(structured["status"] == "exit_nonzero" and structured["exit_code"] == 3,
                  "run_code: a non-zero exit is a result, not a tool error", structured["status"])
            check(structured["limits"]["timeout_ms"] == 5000 and structured["limits"]["pids"] == 16, "run_code: the limits asked for apply")

            created = await call(session, "create_session", {"workspace_limit_bytes": 8 << 20})
            check(not created.is_error, "create_session succeeds", text_of(created))
            sid = created.structured_content["session"]
            check(created.structured_content["workspace_limit_bytes"] == 8 << 20, "create_session: the workspace limit is kept")

            step = {"language": "python", "code": STEP_CODE, "session": sid, "step": "stamp", "tools": ["stamp"]}
            first = await call(session, "run_code", step)
            check(not first.is_error, "run_code step 1 (granting the broker tool stamp) succeeds", text_of(first))
            check(first.structured_content["stdout"] == "stamped hello\n", "run_code step 1: the tool answered through the broker",
                  first.structured_content)
            check(first.structured_content.get("replayed") is False, "run_code step 1: executed, not replayed")
            check(isinstance(first.structured_content.get("checkpoint"), int), "run_code step 1: sealed at a checkpoint")

            again = await call(session, "run_code", step)
            check(not again.is_error, "run_code step 1 again succeeds", text_of(again))
            check(again.structured_content.get("replayed") is True, "run_code step 1 again: replayed from its seal", again.structured_content)
            check(again.structured_content["id"] == first.structured_content["id"], "run_code step 1 again: the sealed run, same id")
            check("replayed" in text_of(again), "run_code step 1 again: the text says it was replayed")

            second = await call(session, "run_code", {"language": "sh", "code": "cat note.txt", "session": sid, "step": "read"})
            check(second.structured_content["stdout"] == "stamped hello\n", "run_code step 2: /work carried over from step 1",
                  second.structured_content)

            conflict = await call(session, "run_code", {**step, "code": "print('re-planned')"})
            check(conflict.is_error and "step_conflict" in text_of(conflict), "run_code: other code for a sealed step is refused",
                  text_of(conflict))

            facts = await call(session, "session_facts", {"session": sid})
            check(not facts.is_error, "session_facts succeeds", text_of(facts))
            steps = [s["step"] for s in facts.structured_content["true"]["steps"]]
            check(steps == ["stamp", "read"], "session_facts: both sealed steps, in order", steps)
            effects = facts.structured_content["true"]["effects"]
            check(len(effects) == 1 and effects[0]["tool"] == "stamp" and effects[0]["state"] == "sealed",
                  "session_facts: the one sealed effect (the replay called nothing)", effects)
            check(facts.structured_content["clean"] is True, "session_facts: nothing unsafe")

            listed = await call(session, "list_effects", {"session": sid})
            check(not listed.is_error, "list_effects succeeds", text_of(listed))
            calls = listed.structured_content["calls"]
            check(len(calls) == 1 and calls[0]["tool"] == "stamp" and calls[0]["state"] == "sealed",
                  "list_effects: the stamp call, sealed", calls)
            none = await call(session, "list_effects", {"session": sid, "state": "in_doubt"})
            check(none.structured_content["calls"] == [], "list_effects: filtered by state")

            bad = await call(session, "run_code", {"language": "cobol", "code": "DISPLAY 'HI'."})
            check(bad.is_error, "run_code with an unknown language is a tool error")
            check("cobol" in text_of(bad) and "language" in text_of(bad) and "python" in text_of(bad),
                  "run_code: the error names the bad language and the good ones", text_of(bad))
            bad = await call(session, "run_code", {"language": "python", "code": "pass", "timeout": 5})
            check(bad.is_error and '"timeout"' in text_of(bad), "run_code: an unknown argument is named", text_of(bad))
            bad = await call(session, "run_code", {"language": "python", "code": "pass", "limits": {"timeout_ms": 61000}})
            check(bad.is_error and "limits.timeout_ms" in text_of(bad) and "maximum" in text_of(bad),
                  "run_code: a limit above the operator's maximum is refused", text_of(bad))
            bad = await call(session, "session_facts", {"session": "no-such-session"})
            check(bad.is_error and "no-such-session" in text_of(bad), "session_facts: an unknown session is a tool error", text_of(bad))

            # A sandbox: files in, commands that keep state, files out, the end.
            made = await call(session, "create_sandbox", {"env": {"GREETING": "hi"}})
            check(not made.is_error and made.structured_content["state"] == "running", "create_sandbox: a running sandbox", text_of(made))
            box = made.structured_content["id"]
            wrote = await call(session, "sandbox_write_file", {"sandbox": box, "path": "src/data.csv", "content": "a,b\n1,2\n"})
            check(not wrote.is_error and wrote.structured_content["size"] == 8, "sandbox_write_file: 8 bytes in src/data.csv", text_of(wrote))
            ran = await call(session, "sandbox_exec", {"sandbox": box, "shell": "wc -l < src/data.csv > count.txt; echo $GREETING"})
            check(not ran.is_error and ran.structured_content["stdout"] == "hi\n", "sandbox_exec: the sandbox's environment", text_of(ran))
            again = await call(session, "sandbox_exec", {"sandbox": box, "command": ["cat", "count.txt"], "cwd": "/work"})
            check(again.structured_content["stdout"] == "2\n", "sandbox_exec: /work kept between commands", text_of(again))
            read = await call(session, "sandbox_read_file", {"sandbox": box, "path": "count.txt"})
            check(read.structured_content["content"] == "2\n" and read.structured_content["encoding"] == "utf8", "sandbox_read_file: the file's text")
            page = await call(session, "sandbox_list_files", {"sandbox": box})
            check([e["name"] for e in page.structured_content["entries"]] == ["count.txt", "src"], "sandbox_list_files: /work's entries",
                  page.structured_content)
            bad = await call(session, "sandbox_read_file", {"sandbox": box, "path": "../etc/passwd"})
            check(bad.is_error and "bad_path" in text_of(bad), "sandbox_read_file: a path out of /work is refused", text_of(bad))
            bad = await call(session, "sandbox_exec", {"sandbox": box, "shell": "true", "timeout": 5})
            check(bad.is_error and "timeout" in text_of(bad), "sandbox_exec: an unknown argument is named", text_of(bad))
            chunk = await call(session, "sandbox_run_code", {"sandbox": box, "code": "import csv\nrows = list(csv.reader(open('src/data.csv')))"})
            check(not chunk.is_error and chunk.structured_content.get("error") is None, "sandbox_run_code: a chunk runs", text_of(chunk))
            chunk = await call(session, "sandbox_run_code", {"sandbox": box, "code": "len(rows)"})
            check(chunk.structured_content.get("value") == "2", "sandbox_run_code: variables carry over between calls", chunk.structured_content)
            chunk = await call(session, "sandbox_run_code", {"sandbox": box, "language": "node", "code": "let seen = 20; seen + 1"})
            check(chunk.structured_content.get("value") == "21", "sandbox_run_code: a node context beside the python one", chunk.structured_content)
            chunk = await call(session, "sandbox_run_code", {"sandbox": box, "language": "bash", "code": "cd src && ls; exit_status=3; (exit $exit_status)"})
            check(chunk.structured_content.get("stdout") == "data.csv\n" and chunk.structured_content.get("exit_code") == 3,
                  "sandbox_run_code: a bash context answers its output and exit code", chunk.structured_content)
            # A sandbox in a session: a command step runs once; sent again, its seal answers.
            made = await call(session, "create_sandbox", {"session": sid})
            check(not made.is_error and made.structured_content.get("session") == sid, "create_sandbox: in a session", text_of(made))
            stepped = made.structured_content["id"]
            counted = [await call(session, "sandbox_exec", {"sandbox": stepped, "shell": "echo x >> n; wc -l < n", "step": "count"}) for _ in range(2)]
            check([c.structured_content.get("stdout") for c in counted] == ["1\n", "1\n"]
                  and [c.structured_content.get("replayed") for c in counted] == [False, True],
                  "sandbox_exec with a step: run once, then answered from its seal", [c.structured_content for c in counted])
            await call(session, "kill_sandbox", {"sandbox": stepped})
            ended = await call(session, "kill_sandbox", {"sandbox": box})
            check(not ended.is_error and ended.structured_content["state"] == "ended", "kill_sandbox: ended", text_of(ended))
            gone = await call(session, "sandbox_exec", {"sandbox": box, "shell": "true"})
            check(gone.is_error and "sandbox_ended" in text_of(gone), "sandbox_exec after kill_sandbox: sandbox_ended", text_of(gone))

            # Concurrent calls: each answer goes to its own request.
            codes = [f"import time; time.sleep(0.2); print({n})" for n in range(4)]
            results = await asyncio.gather(*(call(session, "run_code", {"language": "python", "code": c}) for c in codes))
            outputs = [r.structured_content["stdout"] for r in results]
            check(outputs == ["0\n", "1\n", "2\n", "3\n"], "four concurrent run_code calls get their own answers", outputs)


def raw_checks(sealbox, state_dir):
    lines = [
        "{this is not json",
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "1999-01-01", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}),
        json.dumps({"jsonrpc": "2.0", "id": 2, "method": "initialize",
                    "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json.dumps({"jsonrpc": "2.0", "id": "seven", "method": "no/such/method"}),
        json.dumps({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "no_such_tool", "arguments": {}}}),
        json.dumps({"jsonrpc": "2.0", "id": 9, "method": "ping"}),
    ]
    process = subprocess.run([sealbox, "mcp", "--state-dir", state_dir], input="\n".join(lines) + "\n",
                             capture_output=True, text=True, timeout=60)
    check(process.returncode == 0, "raw: end of input ends the server with status 0", process.stderr)
    replies = [json.loads(line) for line in process.stdout.splitlines()]
    check(len(replies) == 6, "raw: one reply per request, none for the notification, nothing else on stdout", process.stdout)
    by_id = {json.dumps(reply.get("id")): reply for reply in replies}
    parse_error = by_id.get("null", {})
    check(parse_error.get("error", {}).get("code") == -32700, "raw: a malformed line gets -32700 with id null", parse_error)
    check(by_id['1']["result"]["protocolVersion"] == "2025-11-25", "raw: an unknown protocol version gets the newest", by_id['1'])
    check(by_id['2']["result"]["protocolVersion"] == "2025-03-26", "raw: a supported older version is kept", by_id['2'])
    check(by_id['"seven"']["error"]["code"] == -32601, "raw: an unknown method gets -32601 with the string id echoed", by_id['"seven"'])
    check(by_id['8']["error"]["code"] == -32602 and "no_such_tool" in by_id['8']["error"]["message"],
          "raw: an unknown tool gets -32602 naming it", by_id['8'])
    check(by_id['9'] == {"jsonrpc": "2.0", "id": 9, "result": {}}, "raw: ping answers an empty result", by_id['9'])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sealbox", required=True, help="path to the sealbox binary")
    options = parser.parse_args()
    sealbox = os.path.abspath(options.sealbox)
    with tempfile.TemporaryDirectory(prefix="sealbox-mcp-check-") as tmp:
        tools_file = os.path.join(tmp, "tools.yaml")
        with open(tools_file, "w") as f:
            f.write(BROKER_CONFIG)
        try:
            asyncio.run(sdk_checks(sealbox, os.path.join(tmp, "state"), tools_file))
            raw_checks(sealbox, os.path.join(tmp, "raw-state"))
        except CheckFailed as failure:
            print(f"FAIL {failure}", flush=True)
            return 1
    print("mcp client check: all passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
