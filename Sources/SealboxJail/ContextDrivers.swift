/// The in-jail programs that keep a code context (`LiveContext`): each reads requests on
/// stdin and answers on its original stdout, both as frames (8-byte big-endian length, then
/// UTF-8 JSON), and runs each chunk with fds 1 and 2 on files of their own, so that what the
/// chunk prints, what C code and child processes write included, is the chunk's.
enum ContextDrivers {
    /// Python: one namespace for every chunk; the last expression's repr; the traceback of the
    /// chunk's own frames; a PNG of each open matplotlib figure (then closed). Run as
    /// `python3 -c SOURCE LIMIT`, so nothing is written into the jail.
    static let python = #"""
# sealbox code context (python): runs chunks one after another in one namespace.
# Requests on stdin, answers on the descriptor that was stdout when it started, each a frame:
# 8-byte big-endian length, then UTF-8 JSON. While a chunk runs, fds 1 and 2 go to files of
# their own, so print(), C extensions and child processes are all captured.
import ast, base64, io, json, os, sys, tempfile, traceback

LIMIT = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 20
DRIVER = globals().get("__file__", "<string>")
answers = os.fdopen(os.dup(1), "wb", buffering=0)
requests = os.fdopen(os.dup(0), "rb", buffering=0)
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
namespace = {"__name__": "__main__", "__builtins__": __builtins__}

def read_exact(n):
    data = b""
    while len(data) < n:
        try:
            part = requests.read(n - len(data))
        except KeyboardInterrupt:
            continue
        if not part:
            sys.exit(0)
        data += part
    return data

def answer(obj):
    body = json.dumps(obj).encode()
    answers.write(len(body).to_bytes(8, "big") + body)

def captured(f):
    f.seek(0)
    data = f.read(LIMIT + 1)
    return data[:LIMIT].decode("utf-8", "replace"), len(data) > LIMIT

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
    request = json.loads(read_exact(int.from_bytes(read_exact(8), "big")))
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    saved = os.dup(1), os.dup(2)
    sys.stdout.flush(); sys.stderr.flush()
    os.dup2(out.fileno(), 1); os.dup2(err.fileno(), 2)
    reply = {"value": None, "error": None, "display": []}
    try:
        value = run(request["code"])
        if value is not None:
            text = repr(value)
            reply["value"] = text[:LIMIT]
    except BaseException as e:  # KeyboardInterrupt (a timeout) and SystemExit included
        report = traceback.TracebackException.from_exception(e)
        # The chunk's own frames (and what it called), not the driver's.
        report.stack = traceback.StackSummary.from_list([f for f in report.stack if f.filename != DRIVER])
        reply["error"] = {"name": type(e).__name__, "value": str(e)[:LIMIT], "traceback": "".join(report.format())[:LIMIT]}
    finally:
        try:
            sys.stdout.flush(); sys.stderr.flush()
        except BaseException:
            pass
        os.dup2(saved[0], 1); os.dup2(saved[1], 2)
        os.close(saved[0]); os.close(saved[1])
    try:
        reply["display"] = figures()
    except Exception as e:
        reply["display_error"] = str(e)
    reply["stdout"], reply["stdout_truncated"] = captured(out)
    reply["stderr"], reply["stderr_truncated"] = captured(err)
    out.close(); err.close()
    answer(reply)
"""#
}
