// Child processes, worker threads, timers.
const cp = require("child_process"), { Worker } = require("worker_threads");
console.log(cp.execSync("echo child").toString().trim(), cp.spawnSync("ls", ["/"]).status);
// A pipeline through coreutils, as child_process programs do.
console.log(cp.spawnSync("sort", [], { input: "b\na\n" }).stdout.toString().split("\n").filter(Boolean));
const w = new Worker("require('worker_threads').parentPort.postMessage(6*7)", { eval: true });
w.on("message", (m) => { console.log("worker", m); });
setTimeout(() => console.log("timer"), 10);
setImmediate(() => console.log("immediate"));
process.nextTick(() => console.log("tick", require("os").cpus().length > 0));
