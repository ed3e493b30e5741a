// Language and standard library without I/O.
const crypto = require("crypto"), zlib = require("zlib"), util = require("util");
console.log(JSON.stringify({ pi: Math.PI, sha: crypto.createHash("sha256").update("x").digest("hex").slice(0, 8) }));
console.log(crypto.randomBytes(4).length, zlib.gunzipSync(zlib.gzipSync("z".repeat(100))).length, util.format("%d", 42));
console.log([3, 1, 2].sort(), new Date().getFullYear() > 2000, Buffer.from("hi").toString("base64"));
const { URL } = require("url"); console.log(new URL("http://x/y?z=1").searchParams.get("z"));
