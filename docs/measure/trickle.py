#!/usr/bin/env python3
"""Trickled request bodies beside downloads (docs/HARDENING.md, row 17;
issue #13 item 4), as reported: the lifeboat binary with its default limits
in front of an origin that reads request bodies (Python's threading HTTP
server); N clients each send METHOD /download/slowN with Content-Length:
1000 and then one body byte every 10 s (reconnecting when cut, as a
persistent attacker would), while two loops download /download/file
(100 kB) on fresh connections. Prints downloads succeeded/tried and what
the tricklers got ("held ~20s": answered after 20-25 s).

    docs/measure/trickle.py target/debug/lifeboat POST 70 60
    docs/measure/trickle.py target/debug/lifeboat GET 70 60 'methods = ["GET", "HEAD"]'

Arguments: binary, method, tricklers, seconds, optional extra route lines.
Standard library only; uses two free loopback ports."""
import asyncio, collections, os, socket, subprocess, sys, tempfile, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BIN, METHOD, N, SECS = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
METHODS = sys.argv[5] if len(sys.argv) > 5 else ""
BODY = b"x" * 100_000

class Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def _serve(self):
        n = int(self.headers.get("content-length") or 0)
        while n > 0:
            chunk = self.rfile.read(min(n, 65536))
            if not chunk: return
            n -= len(chunk)
        body = BODY if self.path.startswith("/download/file") else b"ok"
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = _serve

srv = ThreadingHTTPServer(("127.0.0.1", 0), Origin); srv.daemon_threads = True
threading.Thread(target=srv.serve_forever, daemon=True).start()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
cfg = f'''[listen]
http = "127.0.0.1:{port}"
[admin]
listen = "off"
[log]
level = "warn"
access = false
[journal]
path = ""
[origin]
url = "http://127.0.0.1:{srv.server_address[1]}"
[[route]]
name = "downloads"
match = "/download/*"
class = "primary"
{METHODS}
'''
d = tempfile.mkdtemp(); open(os.path.join(d, "lb.toml"), "w").write(cfg)
proc = subprocess.Popen([BIN, "run", "--config", os.path.join(d, "lb.toml")])
time.sleep(1.0)

outcomes = collections.Counter()
async def trickler(i, stop):
    while time.monotonic() < stop:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(f"{METHOD} /download/slow{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n".encode())
            await w.drain()
            start = time.monotonic(); sent = 0
            while time.monotonic() < stop:
                try:
                    line = await asyncio.wait_for(r.readline(), 10)
                    outcomes[line.decode().strip() or "closed"] += 1
                    outcomes[f"held ~{int(time.monotonic() - start) // 5 * 5}s"] += 1
                    break
                except asyncio.TimeoutError:
                    w.write(b"x"); await w.drain(); sent += 1
            w.close()
        except Exception as e:
            outcomes[type(e).__name__] += 1
            await asyncio.sleep(0.1)

async def download(stop, stats):
    while time.monotonic() < stop:
        stats[1] += 1
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET /download/file HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"); await w.drain()
            data = await asyncio.wait_for(r.read(), 10)
            if data.startswith(b"HTTP/1.1 200") and data.endswith(BODY): stats[0] += 1
            else: outcomes["download " + data.split(b"\r\n")[0].decode()] += 1
            w.close()
        except Exception as e:
            outcomes["download " + type(e).__name__] += 1
        await asyncio.sleep(0.05)

async def main():
    stop = time.monotonic() + SECS
    stats = [0, 0]
    tasks = [asyncio.create_task(trickler(i, stop)) for i in range(N)]
    await asyncio.sleep(2)
    await asyncio.gather(download(stop, stats), download(stop, stats))
    for t in tasks: t.cancel()
    print(f"{METHOD} x{N} {METHODS or '(route: any method)'}: downloads {stats[0]} of {stats[1]} "
          f"({100*stats[0]/max(1,stats[1]):.1f} %); tricklers: {dict(outcomes)}")
try:
    asyncio.run(main())
finally:
    proc.terminate(); proc.wait()
