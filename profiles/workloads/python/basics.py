# Standard library without I/O: what most snippets do.
import collections, datetime, decimal, fractions, hashlib, itertools, json, math, random, re, statistics, string, textwrap
print(json.dumps({"pi": math.pi, "sha": hashlib.sha256(b"x").hexdigest()[:8], "now": datetime.datetime.now().year > 2000}))
print(statistics.mean([1, 2, 3]), fractions.Fraction(1, 3), decimal.Decimal("1.1") * 3, random.random() < 1)
print(collections.Counter("hello").most_common(1), list(itertools.islice(itertools.count(), 3)), re.sub(r"\d", "#", "a1b2"))
print(textwrap.shorten(string.ascii_letters, 20))
