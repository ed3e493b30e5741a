# Loopback networking (the jail has only lo): TCP, UDP, unix sockets, asyncio, http.
import asyncio, http.client, http.server, socket, threading
srv = socket.create_server(("127.0.0.1", 0)); port = srv.getsockname()[1]
def serve():
    c, _ = srv.accept(); c.sendall(c.recv(10).upper()); c.close()
threading.Thread(target=serve).start()
with socket.create_connection(("127.0.0.1", port)) as c:
    c.sendall(b"ping"); print(c.recv(10))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); u.sendto(b"dg", u.getsockname()); print(u.recv(10))
a, b = socket.socketpair(); a.sendall(b"pair"); print(b.recv(10))
async def main():
    async def handle(r, w): w.write(await r.read(4)); await w.drain(); w.close()
    s = await asyncio.start_server(handle, "127.0.0.1", 0)
    r, w = await asyncio.open_connection("127.0.0.1", s.sockets[0].getsockname()[1])
    w.write(b"asyn"); await w.drain(); print(await r.read(4)); w.close(); s.close()
asyncio.run(main())
httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=httpd.handle_request).start()
conn = http.client.HTTPConnection("127.0.0.1", httpd.server_address[1]); conn.request("GET", "/"); print(conn.getresponse().status)
try:
    socket.getaddrinfo("localhost", 80)
except OSError as e:
    print("getaddrinfo", e)
