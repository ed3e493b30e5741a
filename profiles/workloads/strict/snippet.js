// A self-contained snippet: computation, the standard library, files in /work and /tmp.
const fs = require("fs"), crypto = require("crypto");
fs.writeFileSync("/tmp/x.json", JSON.stringify({ sum: [1, 2, 3].reduce((a, b) => a + b), sha: crypto.createHash("sha1").update("x").digest("hex").slice(0, 6) }));
console.log(JSON.parse(fs.readFileSync("/tmp/x.json", "utf8")), Math.sqrt(2));
setTimeout(() => fs.writeFileSync("/work/result.txt", "ok"), 1);
