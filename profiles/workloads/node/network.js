// Loopback networking: TCP, UDP, http.
const net = require("net"), dgram = require("dgram"), http = require("http");
const srv = net.createServer((c) => c.on("data", (d) => { c.end(d.toString().toUpperCase()); }));
srv.listen(0, "127.0.0.1", () => {
  const c = net.connect(srv.address().port, "127.0.0.1", () => c.write("ping"));
  c.on("data", (d) => { console.log(d.toString()); srv.close(); });
});
const u = dgram.createSocket("udp4");
u.bind(0, "127.0.0.1", () => u.send("dg", u.address().port, "127.0.0.1"));
u.on("message", (m) => { console.log(m.toString()); u.close(); });
const h = http.createServer((q, r) => r.end("ok"));
h.listen(0, "127.0.0.1", () => http.get(`http://127.0.0.1:${h.address().port}/`, (r) => { console.log(r.statusCode); h.close(); }));
require("dns").lookup("localhost", (e, a) => console.log("dns", e ? e.code : a));
