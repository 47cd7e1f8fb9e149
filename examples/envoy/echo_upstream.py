#!/usr/bin/env python3
"""A loopback upstream that answers every request with what it received.

The reply is JSON: the method, the path and every request header, so a
demo or a test can see exactly what Warden let through to the upstream.
A request carrying `x-echo-frames: N` (and optionally `x-echo-gap-ms: M`,
default 100) is answered in frames: the upstream first reads a chunked
request body to its end, then sends the reply chunked in N parts, waiting
M milliseconds before each, so that a proxy hands them on one by one.

Usage: echo_upstream.py PORT
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        frames = int(self.headers.get("x-echo-frames") or 0)
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        elif frames and "chunked" in self.headers.get("transfer-encoding", ""):
            self.read_chunked()
        body = json.dumps({
            "method": self.command,
            "path": self.path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
        }).encode()
        if frames:
            self.answer_in_frames(body, frames)
            return
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_chunked(self):
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return
            self.rfile.read(size + 2)

    def answer_in_frames(self, body, frames):
        gap = int(self.headers.get("x-echo-gap-ms") or 100) / 1000
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        step = -(-len(body) // frames)
        for start in range(0, len(body), step):
            time.sleep(gap)
            part = body[start:start + step]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
        time.sleep(gap)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = answer

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo)
    print(f"echo upstream on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
