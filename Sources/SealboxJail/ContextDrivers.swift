/// The in-jail programs that keep a code context (`LiveContext`), one per language.
///
/// One protocol for all of them, chosen so that a chunk's output is simply what the
/// interpreter and its children write to fds 1 and 2 while the chunk runs (sealbox reads both
/// pipes as it waits): requests and answers travel on a separate channel, the socket the
/// interpreter was given as stdin, which each driver moves off fd 0 (stdin becomes /dev/null,
/// so a chunk that reads stdin cannot eat the next request).
/// - a request is the chunk's UTF-8 source followed by one NUL byte;
/// - an answer is one line of JSON: `value` (the last expression's representation, or null),
///   `error` (`name`, `value`, `traceback`, or null), `display` (rich outputs, `mime` and
///   base64 `data`), and for a shell `exit_code`.
/// A driver writes everything a chunk printed before it answers, so when the answer arrives
/// the output is already in the pipes. SIGINT means "interrupt the chunk": a driver keeps it
/// from killing itself between chunks.
struct ContextDriver: Sendable {
    let language: String
    /// What the jail runs: the interpreter and the driver passed on its command line, so
    /// nothing is written into the jail. `limit` bounds a value's representation.
    let command: @Sendable (_ limit: Int) -> [String]

    static let all: [String: ContextDriver] = [
        "python": ContextDriver(language: "python") { ["python3", "-c", ContextDrivers.python, String($0)] },
        // node cannot move a descriptor itself: /bin/sh moves the channel to fd 3 first.
        "node": ContextDriver(language: "node") {
            ["/bin/sh", "-c", #"exec node -e "$0" "$1" 3<&0 </dev/null"#, ContextDrivers.node, String($0)]
        },
        "bash": ContextDriver(language: "bash") { _ in ["bash", "--noprofile", "--norc", "-c", ContextDrivers.bash] },
    ]
}

enum ContextDrivers {
    /// Python: one namespace for every chunk; the last expression's repr; the traceback of the
    /// chunk's own frames; a PNG of each open matplotlib figure (then closed).
    static let python = #"""
# sealbox code context (python): runs chunks one after another in one namespace.
import ast, base64, io, json, os, signal, sys, traceback

LIMIT = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 20
DRIVER = globals().get("__file__", "<string>")
channel = os.dup(0)  # not inherited by child processes (PEP 446)
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
namespace = {"__name__": "__main__", "__builtins__": __builtins__}
running = False

def interrupt(signum, frame):
    # Only a running chunk is interrupted; one that arrives as a chunk ends is ignored.
    if running:
        raise KeyboardInterrupt
signal.signal(signal.SIGINT, interrupt)

pending = b""
def next_chunk():
    global pending
    while b"\0" not in pending:
        part = os.read(channel, 1 << 16)
        if not part:
            sys.exit(0)
        pending += part
    code, _, pending = pending.partition(b"\0")
    return code.decode("utf-8", "replace")

def answer(obj):
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(channel, data):]

def figures():
    out = []
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return out
    for number in plt.get_fignums():
        buf = io.BytesIO()
        plt.figure(number).savefig(buf, format="png")
        out.append({"mime": "image/png", "data": base64.b64encode(buf.getvalue()).decode()})
    plt.close("all")
    return out

def run(code):
    tree = ast.parse(code, "<chunk>", "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, "<chunk>", "exec"), namespace)
    if last is not None:
        return eval(compile(last, "<chunk>", "eval"), namespace)
    return None

while True:
    code = next_chunk()
    reply = {"value": None, "error": None, "display": []}
    try:
        running = True
        value = run(code)
        running = False
        if value is not None:
            reply["value"] = repr(value)[:LIMIT]
    except BaseException as e:  # KeyboardInterrupt (a timeout) and SystemExit included
        running = False
        report = traceback.TracebackException.from_exception(e)
        # The chunk's own frames (and what it called), not the driver's.
        report.stack = traceback.StackSummary.from_list([f for f in report.stack if f.filename != DRIVER])
        reply["error"] = {"name": type(e).__name__, "value": str(e)[:LIMIT], "traceback": "".join(report.format())[:LIMIT]}
    try:
        reply["display"] = figures()
    except Exception as e:
        reply["display_error"] = str(e)[:LIMIT]
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    answer(reply)
"""#

    /// Node: every chunk a script in one global scope (top-level `let`, `const` and `var`
    /// carry over, like a REPL); the last expression's `util.inspect`, awaited first when it
    /// is a Promise; the error's stack. The event loop runs between chunks, so timers and
    /// sockets a chunk started go on.
    static let node = #"""
// sealbox code context (node): runs chunks one after another in one global scope.
'use strict';
const net = require('net'), vm = require('vm'), util = require('util'), stream = require('stream');
const LIMIT = Number(process.argv[1]) || (1 << 20);
globalThis.require = require;
// The channel is fd 3; fd 0 is /dev/null. process.stdin stays an empty stream.
Object.defineProperty(process, 'stdin', { configurable: true, enumerable: true, value: new stream.Readable({ read() { this.push(null); } }) });
const channel = new net.Socket({ fd: 3, readable: true, writable: true });
let interrupt = null;
process.on('SIGINT', () => { if (interrupt) interrupt(); });

function describe(e) {
  if (e instanceof Error || (e && typeof e === 'object' && 'stack' in e)) {
    const stack = String(e.stack || '').split('\n').filter((line) => !line.includes('[eval]')).join('\n');
    return { name: String(e.name || 'Error'), value: String(e.message || '').slice(0, LIMIT), traceback: stack.slice(0, LIMIT) };
  }
  return { name: typeof e, value: util.inspect(e).slice(0, LIMIT), traceback: '' };
}

async function run(code) {
  const reply = { value: null, error: null, display: [] };
  try {
    let value = vm.runInThisContext(code, { filename: '<chunk>', breakOnSigint: true });
    if (value && typeof value.then === 'function') {
      value = await new Promise((resolve, reject) => {
        interrupt = () => reject(new Error('Script execution was interrupted by `SIGINT`'));
        value.then(resolve, reject);
      });
    }
    if (value !== undefined) reply.value = util.inspect(value).slice(0, LIMIT);
  } catch (e) {
    reply.error = describe(e);
  } finally {
    interrupt = null;
  }
  return reply;
}

let pending = Buffer.alloc(0);
const chunks = [];
let busy = false;
async function pump() {
  if (busy) return;
  busy = true;
  while (chunks.length) {
    const reply = await run(chunks.shift());
    channel.write(JSON.stringify(reply) + '\n');
  }
  busy = false;
}
channel.on('data', (part) => {
  pending = Buffer.concat([pending, part]);
  for (let end = pending.indexOf(0); end >= 0; end = pending.indexOf(0)) {
    chunks.push(pending.subarray(0, end).toString('utf8'));
    pending = pending.subarray(end + 1);
  }
  pump();
});
channel.on('end', () => process.exit(0));
channel.on('error', () => process.exit(0));
"""#

    /// Bash: one shell, so variables, functions, `cd` and `export` carry over; each chunk is
    /// `eval`ed and answers its exit status. SIGINT interrupts the chunk's foreground command
    /// and the shell goes on.
    static let bash = #"""
# sealbox code context (bash): the channel moves to fd 3, stdin is /dev/null.
exec 3<&0 </dev/null
trap : INT
__sealbox_code=
while :; do
    IFS= read -r -d '' __sealbox_part <&3
    __sealbox_status=$?
    __sealbox_code+=$__sealbox_part
    # Interrupted while waiting (a SIGINT that came as a chunk ended): read on.
    [ "$__sealbox_status" -gt 128 ] && continue
    [ "$__sealbox_status" -eq 0 ] || exit 0
    eval "$__sealbox_code"
    __sealbox_status=$?
    __sealbox_code=
    printf '{"value":null,"error":null,"display":[],"exit_code":%d}\n' "$__sealbox_status" >&3
done
"""#
}
