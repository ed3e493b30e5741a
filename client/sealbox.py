"""sealbox client: call the tools granted to this run through the sealbox broker.

Standard library only; Python 3.7 or later.

    import sealbox
    result = sealbox.call("github.create_issue", {"title": "hi"}, key="issue-1")
    print(result, sealbox.last_effect)        # e.g. {'seq': 17, 'replayed': False}

    r, effect = sealbox.call_with_effect("weather", {"city": "Oslo"})

On a refusal or failure `call` raises `sealbox.Error`, whose `.code` is one of the broker's codes
(denied, expired, revoked, in_doubt, awaiting_approval, unknown_tool, tool_failed, bad_request) or
one of this client's own: no_broker (the run has no token / socket), unavailable (cannot reach the
broker, or no answer in time), bad_response (the broker's answer is not a protocol answer).

The token (env SEALBOX_TOKEN) can be narrowed offline before handing it to less trusted code:

    narrow = sealbox.attenuate(os.environ["SEALBOX_TOKEN"], tools=["weather"], expires_in=60)

See docs/tokens.md for the token format.
"""

import base64
import hashlib
import hmac
import json
import os
import socket
import time

__all__ = ["Error", "call", "call_with_effect", "attenuate", "last_effect", "MAX_LINE_BYTES"]

MAX_LINE_BYTES = 1 << 20          # longest answer line accepted, newline included
TOKEN_PREFIX = "sbx1"
MAX_TOKEN_BYTES = 4096
MAX_CAVEATS = 16
SIGNATURE_BYTES = 32
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

#: The ``effect`` object of the last successful ``call`` in this process (a dict such as
#: ``{"seq": 17, "replayed": False}``), or None. A replayed answer may also carry
#: ``"completion_seq"``, and ``"from_session"`` when it was sealed by another session of the same
#: family (a fork or its parent: the world does not fork). Shared by all threads: threads should
#: use ``call_with_effect``.
last_effect = None


class Error(Exception):
    """A call that did not succeed. ``code`` is a short machine-readable string, ``message`` text."""

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self):
        return "{}: {}".format(self.code, self.message)


# ---------------------------------------------------------------------------------------------
# calls


def call(tool, args=None, key=None, fresh=False, timeout=30):
    """Call ``tool`` with ``args`` (a dict) and return the tool's ``result``.

    ``key`` is an idempotency key: a retry or resumed run calling again with the same key gets
    the recorded outcome instead of a second side effect. ``fresh=True`` asks for a new read
    where the broker would otherwise return a sealed snapshot. ``timeout`` (seconds) bounds the
    whole exchange. Sets ``sealbox.last_effect``. Raises ``sealbox.Error``.
    """
    global last_effect
    result, effect = call_with_effect(tool, args, key=key, fresh=fresh, timeout=timeout)
    last_effect = effect
    return result


def call_with_effect(tool, args=None, key=None, fresh=False, timeout=30):
    """Like ``call`` but returns ``(result, effect)`` and leaves ``last_effect`` alone."""
    answer = _exchange(_request(tool, args, key, fresh), timeout)
    return answer.get("result"), answer.get("effect")


def _broker_env():
    token = os.environ.get("SEALBOX_TOKEN")
    path = os.environ.get("SEALBOX_BROKER")
    if not token or not path:
        raise Error("no_broker", "no broker: this run was started without --tools")
    return token, path


def _request(tool, args, key, fresh):
    token, _ = _broker_env()
    if not isinstance(tool, str) or not tool:
        raise Error("bad_request", "tool must be a non-empty string")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise Error("bad_request", "args must be a dict, not {}".format(type(args).__name__))
    if key is not None and not isinstance(key, str):
        raise Error("bad_request", "key must be a string")
    request = {"token": token, "op": "call", "tool": tool, "args": args, "fresh": bool(fresh)}
    if key is not None:
        request["key"] = key
    try:
        line = json.dumps(request, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise Error("bad_request", "args are not JSON: {}".format(e))
    return line.encode("ascii") + b"\n"


def _exchange(line, timeout):
    _, path = _broker_env()
    deadline = time.monotonic() + timeout
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.connect(path)
            sock.sendall(line)
            data = _read_line(sock, deadline)
        except socket.timeout:
            raise Error("unavailable", "no answer from the broker within {}s".format(timeout))
        except OSError as e:
            raise Error("unavailable", "cannot talk to the broker at {}: {}".format(path, e.strerror or e))
    finally:
        sock.close()
    return _parse_answer(data)


def _read_line(sock, deadline):
    buf = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        sock.settimeout(remaining)
        chunk = sock.recv(min(65536, MAX_LINE_BYTES - len(buf)))
        if not chunk:
            raise Error("bad_response", "the broker closed the connection without a complete answer")
        newline = chunk.find(b"\n")
        if newline >= 0:
            buf += chunk[:newline]
            return bytes(buf)
        buf += chunk
        if len(buf) >= MAX_LINE_BYTES:
            raise Error("bad_response", "the broker's answer is longer than {} bytes".format(MAX_LINE_BYTES))


def _parse_answer(data):
    try:
        answer = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Error("bad_response", "the broker's answer is not JSON")
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise Error("bad_response", "the broker's answer has no ok field")
    if answer["ok"]:
        return answer
    err = answer.get("error")
    if not isinstance(err, dict) or not isinstance(err.get("code"), str):
        raise Error("bad_response", "the broker refused without an error code")
    message = err.get("message")
    raise Error(err["code"], message if isinstance(message, str) else "")


# ---------------------------------------------------------------------------------------------
# tokens (docs/tokens.md): sbx1.<base64url(canonical envelope)>.<base64url(signature)>


def canonical_json(value):
    """The canonical bytes signed in tokens: sorted keys, no whitespace, ASCII, integers only."""
    _check_canonical_value(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _check_canonical_value(value):
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise Error("denied", "token JSON holds only objects, arrays, strings and integers")
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise Error("denied", "integer out of 64-bit range")
    elif isinstance(value, str):
        pass
    elif isinstance(value, list):
        for v in value:
            _check_canonical_value(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise Error("denied", "object keys must be strings")
            _check_canonical_value(v)
    else:
        raise Error("denied", "not a token JSON value: {}".format(type(value).__name__))


def _b64encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text):
    if len(text) % 4 == 1 or text.strip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"):
        raise Error("denied", "malformed token: not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64encode(data) != text:
        raise Error("denied", "malformed token: not canonical base64url")
    return data


def _decode_token(token):
    if not isinstance(token, str):
        raise Error("denied", "malformed token: not a string")
    if len(token.encode("utf-8")) > MAX_TOKEN_BYTES:
        raise Error("denied", "malformed token: longer than {} bytes".format(MAX_TOKEN_BYTES))
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise Error("denied", "malformed token: expected {}.<payload>.<signature>".format(TOKEN_PREFIX))
    payload = _b64decode(parts[1])
    signature = _b64decode(parts[2])
    if len(signature) != SIGNATURE_BYTES:
        raise Error("denied", "malformed token: bad signature length")
    try:
        envelope = json.loads(payload.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Error("denied", "malformed token: payload is not JSON")
    if (not isinstance(envelope, dict) or set(envelope) != {"root", "caveats"}
            or not isinstance(envelope["root"], dict) or not isinstance(envelope["caveats"], list)):
        raise Error("denied", "malformed token: bad envelope")
    try:
        canonical = canonical_json(envelope)
    except RecursionError:
        canonical = None
    if canonical != payload:
        raise Error("denied", "malformed token: payload is not canonical JSON")
    tools = envelope["root"].get("tools")
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
        raise Error("denied", "malformed token: bad root tools")
    for caveat in envelope["caveats"]:
        if not isinstance(caveat, dict) or not caveat or not set(caveat) <= {"tools", "exp"}:
            raise Error("denied", "malformed token: bad caveat")
    return envelope, signature


def _effective_tools(envelope):
    scope = set(envelope["root"]["tools"])
    for caveat in envelope["caveats"]:
        if "tools" in caveat:
            scope &= set(caveat["tools"])
    return scope


def _append_caveat(token, caveat):
    """Append ``caveat`` (a dict) to ``token`` and extend the HMAC chain. No policy checks."""
    envelope, signature = _decode_token(token)
    if len(envelope["caveats"]) >= MAX_CAVEATS:
        raise Error("denied", "a token carries at most {} caveats".format(MAX_CAVEATS))
    new_signature = hmac.new(signature, canonical_json(caveat), hashlib.sha256).digest()
    envelope["caveats"].append(caveat)
    out = "{}.{}.{}".format(TOKEN_PREFIX, _b64encode(canonical_json(envelope)), _b64encode(new_signature))
    if len(out) > MAX_TOKEN_BYTES:
        raise Error("denied", "token would be {} bytes; the limit is {}".format(len(out), MAX_TOKEN_BYTES))
    return out


def attenuate(token, tools=None, expires_in=None, expires_at_ms=None):
    """Return ``token`` narrowed offline, without the broker's key.

    ``tools``: the tools the new token may still call (must be within the token's current scope).
    ``expires_in``: seconds from now; ``expires_at_ms``: an absolute unix time in milliseconds
    (the earlier of the two if both are given). The effective expiry is the earliest of all
    caveats, so a later expiry than the token's changes nothing. Raises ``sealbox.Error`` (code
    ``denied``) for a malformed token, a tool outside the scope, a 17th caveat or a token over
    4096 bytes. Nobody, the holder included, can remove a caveat again.
    """
    if tools is None and expires_in is None and expires_at_ms is None:
        raise Error("denied", "attenuation needs tools, an expiry, or both")
    caveat = {}
    if tools is not None:
        if isinstance(tools, str) or not all(isinstance(t, str) and t for t in tools):
            raise Error("denied", "tools must be a list of non-empty strings")
        tools = sorted(set(tools))
        envelope, _ = _decode_token(token)
        outside = [t for t in tools if t not in _effective_tools(envelope)]
        if outside:
            raise Error("denied", "cannot widen a token: not in its scope: {}".format(", ".join(outside)))
        caveat["tools"] = tools
    expiries = []
    if expires_in is not None:
        expiries.append(int(time.time() * 1000) + int(expires_in * 1000))
    if expires_at_ms is not None:
        if isinstance(expires_at_ms, bool) or not isinstance(expires_at_ms, int):
            raise Error("denied", "expires_at_ms must be an integer")
        expiries.append(expires_at_ms)
    if expiries:
        caveat["exp"] = min(expiries)
    return _append_caveat(token, caveat)
