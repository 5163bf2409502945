"""The compose demo's echo upstream where mendhak/http-https-echo cannot be pulled.

Answers every request with 200 and the JSON that image answers with (the fields the walkthrough
reads: path, method, headers with lower-case names and repeated headers joined by ", ", body,
and os.hostname, by which the walkthrough recognises the echo). Listens on $HTTP_PORT (8080).
"""

import json
import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_one_request(self):
        # Every method, without a do_<METHOD> per verb.
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:
            self.close_connection = True
            return
        if not self.parse_request():
            return
        self.echo()
        self.wfile.flush()

    def echo(self):
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        url = urlsplit(self.path)
        answer = {
            "path": url.path,
            "headers": headers,
            "method": self.command,
            "body": body,
            "hostname": (headers.get("host") or "").split(":")[0],
            "ip": self.client_address[0],
            "protocol": "http",
            "query": {k: v[0] if len(v) == 1 else v for k, v in parse_qs(url.query).items()},
            "os": {"hostname": socket.gethostname()},
        }
        data = json.dumps(answer, indent=2).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print(f"echo: {self.address_string()} {fmt % args}", flush=True)


if __name__ == "__main__":
    # PID 1 in its container: without a handler SIGTERM is ignored and `docker compose down`
    # waits 10 s before killing it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = int(os.environ.get("HTTP_PORT", "8080"))
    print(f"echo: listening on :{port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Echo).serve_forever()
