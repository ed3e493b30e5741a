# A self-contained snippet: computation, the standard library, files in /work and /tmp.
import collections, datetime, hashlib, json, math, pathlib, re, tempfile
p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
p.write_text(json.dumps({"sum": sum(range(10)), "sha": hashlib.sha1(b"x").hexdigest()[:6]}))
print(json.loads(p.read_text()), math.sqrt(2), re.findall(r"o", "foo"), collections.Counter("aab")["a"], datetime.date.today().year > 2000)
pathlib.Path("/work/result.txt").write_text("ok")
