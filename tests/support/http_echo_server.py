#!/usr/bin/env python3
"""A scriptable HTTP server for tests, on Python's http.server.

Listens on 127.0.0.1 (port 0 unless --port), prints "PORT <n>" on a line of
its own once listening, and serves until killed or its stdin closes. Every
request (method, path, headers, body, time) is appended as one JSON line to
--record FILE, flushed before the answer is sent.

What a request gets is decided by its path:
  /status/N            answers N with body "status N"
  /seq/A,B,C           the k-th request to this exact path answers the k-th
                       status of the list (the last one repeats)
  /delay/MS/REST       waits MS milliseconds, then serves /REST
  /redirect?to=URL[&code=302]   answers a redirect to URL
  /big/N               answers 200 with N bytes
  /echo                answers 200 with the request's headers and body (JSON)
  anything else        answers 200 with body "ok"
"""
import argparse
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
SEQ_COUNTS = {}
RECORD = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def log_message(self, fmt, *args):  # quiet
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length", "0") or "0")
        body = self.rfile.read(length) if length > 0 else b""
        entry = {
            "method": self.command,
            "path": self.path,
            "headers": {k: v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "time": time.time(),
        }
        if RECORD is not None:
            with LOCK:
                RECORD.write(json.dumps(entry) + "\n")
                RECORD.flush()
        self._serve(self.path, entry)

    def _send(self, status, payload, extra=None):
        if status in (204, 304) or status < 200:
            payload = b""  # no body may follow these
        self.send_response(status)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        if not (extra and "Content-Type" in extra):
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _serve(self, path, entry):
        parsed = urllib.parse.urlsplit(path)
        parts = [p for p in parsed.path.split("/") if p]
        if parts[:1] == ["delay"] and len(parts) >= 2:
            time.sleep(int(parts[1]) / 1000.0)
            rest = "/" + "/".join(parts[2:])
            if parsed.query:
                rest += "?" + parsed.query
            return self._serve(rest, entry)
        if parts[:1] == ["status"] and len(parts) == 2:
            n = int(parts[1])
            return self._send(n, ("status %d" % n).encode())
        if parts[:1] == ["seq"] and len(parts) == 2:
            statuses = [int(s) for s in parts[1].split(",")]
            with LOCK:
                k = SEQ_COUNTS.get(parsed.path, 0)
                SEQ_COUNTS[parsed.path] = k + 1
            n = statuses[min(k, len(statuses) - 1)]
            return self._send(n, ("status %d" % n).encode())
        if parts[:1] == ["redirect"]:
            q = urllib.parse.parse_qs(parsed.query)
            code = int(q.get("code", ["302"])[0])
            return self._send(code, b"moved", {"Location": q["to"][0]})
        if parts[:1] == ["big"] and len(parts) == 2:
            return self._send(200, b"x" * int(parts[1]))
        if parts[:1] == ["echo"]:
            payload = json.dumps({"headers": entry["headers"], "body": entry["body"]}).encode()
            return self._send(200, payload, {"Content-Type": "application/json"})
        return self._send(200, b"ok")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


def main():
    global RECORD
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--record")
    args = ap.parse_args()
    if args.record:
        RECORD = open(args.record, "a", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("PORT %d" % server.server_address[1], flush=True)
    # Ends when the test closes our stdin (or kills us).
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
