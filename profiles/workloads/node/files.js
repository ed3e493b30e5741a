// Files in /work and /tmp, sync and promise APIs.
const fs = require("fs"), os = require("os"), path = require("path");
const d = fs.mkdtempSync(path.join(os.tmpdir(), "n-"));
fs.writeFileSync(path.join(d, "a.txt"), "hello");
fs.copyFileSync(path.join(d, "a.txt"), path.join(d, "b.txt"));
fs.renameSync(path.join(d, "b.txt"), path.join(d, "c.txt"));
fs.symlinkSync("c.txt", path.join(d, "link"));
fs.chmodSync(path.join(d, "c.txt"), 0o600);
console.log(fs.readdirSync(d).sort(), fs.statSync(path.join(d, "c.txt")).size, fs.realpathSync(path.join(d, "link")).endsWith("c.txt"));
fs.promises.readFile(path.join(d, "a.txt"), "utf8").then((t) => {
  console.log(t);
  fs.rmSync(d, { recursive: true });
  fs.writeFileSync("/work/out.txt", "done");
  console.log(fs.readdirSync("/work").includes("out.txt"), process.cwd());
});
