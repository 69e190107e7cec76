"""Real servers on 127.0.0.1 that the tests start themselves: an S3 API (moto's server, a separate
process) and an HTTP file server that honours Range requests (a thread). Clients reach the S3 server
through the standard AWS variables only, which conftest.py sets for the whole session before any Spark
JVM starts (so executors inherit them), pointing at a port chosen then.

    S3Server(port).start() / .stop()      moto_server; .create_bucket(name), .put(uri, data), .client()
    RangeFileServer(folder).start()       http://127.0.0.1:PORT/<path under folder>, with Range support
    FaultProxy(upstream, seed, ...)       in front of either: a share of requests answered 503 or cut short
"""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def aws_test_environment(port: int, home: Path) -> dict[str, str]:
    """The AWS variables every client (pyarrow, boto3, Spark executors, CLI subprocesses) reads: dummy
    keys, a region, the local endpoint, and config files that are not the user's ~/.aws."""
    empty = home / "aws-config"
    empty.write_text("")
    return {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class S3Server:
    """moto's S3 server in its own process on `port`; its state lives as long as the process."""

    def __init__(self, port: int):
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self._process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30) -> S3Server:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._process.returncode}")
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.endpoint} within {timeout_s} s")

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint)

    def create_bucket(self, name: str) -> str:
        client = self.client()
        if name not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=name)
        return f"s3://{name}"

    def put(self, uri: str, data: bytes) -> None:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        self.client().put_object(Bucket=bucket, Key=key, Body=data)

    def get(self, uri: str) -> bytes:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def keys(self, uri: str) -> list[str]:
        """Every key under an s3://bucket/prefix, sorted."""
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """GET with `Range: bytes=a-b` (one range) answers 206 with that slice; otherwise the whole file."""

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        size = os.path.getsize(path)
        start, end = 0, size - 1
        match = _RANGE.match(self.headers.get("Range", ""))
        if match:
            first, last = match.groups()
            if first:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
            else:
                start = max(0, size - int(last))
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
        self.send_response(206 if match else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if match:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(left, 1 << 16))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)


class RangeFileServer:
    """Serves `folder` over HTTP on 127.0.0.1 in a thread, with Range support."""

    def __init__(self, folder: Path | str, port: int = 0):
        handler = lambda *a, **k: _RangeHandler(*a, directory=str(folder), **k)  # noqa: E731
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> RangeFileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
              b"<Message>Please reduce your request rate.</Message></Error>")


class FaultProxy:
    """An HTTP reverse proxy on 127.0.0.1 in front of `upstream` (the S3 server or a RangeFileServer) that
    fails a share of GET and HEAD requests, as object stores and CDNs do under load:

      `unavailable` of them get 503 (S3's `SlowDown` error body with `s3=True`);
      `cut` of them get the upstream's status and headers (its full Content-Length) and then half the
      body before the connection closes;
      a request whose path contains one of `dead` never succeeds: 503, or with `hang_s` no answer for
      that long before the connection closes.

    Which request fails is decided by sha256(seed, method, path, Range, how often that exact request was
    made before): the same in every run whatever order concurrent requests arrive in, and a retried
    request draws again. `.faults` counts what was injected, by kind."""

    def __init__(self, upstream: str, seed: int = 0, unavailable: float = 0.0, cut: float = 0.0,
                 dead: tuple[str, ...] = (), hang_s: float = 0.0, s3: bool = True):
        self.upstream = upstream.rstrip("/")
        self.seed, self.unavailable, self.cut, self.dead, self.hang_s, self.s3 = seed, unavailable, cut, dead, hang_s, s3
        self.faults = {"unavailable": 0, "cut": 0, "dead": 0}
        self._seen: dict[tuple, int] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _decide(self, handler) -> str | None:
        if handler.command not in ("GET", "HEAD"):
            return None
        if any(d in handler.path for d in self.dead):
            return "dead"
        request = (handler.command, handler.path, handler.headers.get("Range", ""))
        with self._lock:
            n = self._seen[request] = self._seen.get(request, -1) + 1
        digest = hashlib.sha256(repr((self.seed, *request, n)).encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        if draw < self.unavailable:
            return "unavailable"
        if draw < self.unavailable + self.cut and handler.command == "GET":
            return "cut"
        return None

    def _handle(self, handler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        fault = self._decide(handler)
        if fault:
            with self._lock:
                self.faults[fault] += 1
        if fault == "dead" and self.hang_s:
            time.sleep(self.hang_s)
            handler.close_connection = True
            return
        if fault in ("unavailable", "dead"):
            self._unavailable(handler)
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("connection", "keep-alive")}
        request = urllib.request.Request(self.upstream + handler.path, data=body or None, headers=headers,
                                         method=handler.command)
        try:
            response = urllib.request.urlopen(request, timeout=30)
        except urllib.error.HTTPError as e:
            response = e
        with response:
            data = response.read()
            handler.send_response(response.status)
            for name, value in response.headers.items():
                if name.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"):
                    handler.send_header(name, value)
            length = response.headers.get("Content-Length", str(len(data)))
            handler.send_header("Content-Length", length if handler.command == "HEAD" else str(len(data)))
            if fault == "cut":
                handler.send_header("Connection", "close")
                handler.end_headers()
                handler.wfile.write(data[: len(data) // 2])
                handler.wfile.flush()
                handler.close_connection = True
                return
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(data)

    def _unavailable(self, handler) -> None:
        body = _SLOW_DOWN if self.s3 else b"Service Unavailable\n"
        handler.send_response(503)
        handler.send_header("Content-Type", "application/xml" if self.s3 else "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Retry-After", "0")
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)
