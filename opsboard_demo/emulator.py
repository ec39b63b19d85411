"""An emulated AWS for the demo, the tests and the benchmarks, and a fault-injecting proxy for it.

`MotoServer` runs moto in server mode in a child process on 127.0.0.1 (real HTTP; boto3 is pointed
at it by endpoint URL). `FaultProxy` sits in front of any endpoint and adds latency, throttling
errors shaped as each AWS protocol returns them, 5xx answers or dropped connections: moto has no
fault injection of its own.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception as exc:
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s ({last})")


#: A message attribute (epoch milliseconds) the demo's emulator takes as the message's send time
#: (`opsboard_demo.moto_server`): seeded messages then carry the ages the loaded history gives them.
SENT_AT = "demoSentAt"


class MotoServer:
    """moto in server mode, in a child process, on a loopback port (`backdating`: the demo's
    variant, which honours SENT_AT)."""

    def __init__(self, port: int | None = None, log_path: str | None = None, backdating: bool = False):
        self.port = port or free_port()
        self.log_path = log_path
        self.backdating = backdating
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        module = "opsboard_demo.moto_server" if self.backdating else "moto.server"
        return [sys.executable, "-m", module, "-H", LOOPBACK, "-p", str(self.port)]

    def start(self) -> MotoServer:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        env = {**os.environ, "MOTO_PORT": str(self.port)}
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        try:
            wait_for_http(f"{self.url}/moto-api/")
        except RuntimeError:
            self.stop()
            raise
        return self

    def reset(self) -> None:
        """Forget every emulated resource."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        urllib.request.urlopen(req, timeout=10).close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- fault injection -------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def operation(self) -> str:
        """The AWS operation for RPC-style protocols ("" when the path names it instead)."""
        target = self.headers.get("x-amz-target", "")
        if target:
            return target.rsplit(".", 1)[-1]
        if "/operation/" in self.path:  # smithy rpc-v2-cbor: /service/<svc>/operation/<Op>
            return self.path.rsplit("/", 1)[-1]
        if self.body.startswith(b"Action="):
            return self.body.split(b"&", 1)[0][7:].decode()
        return ""


def _cbor_text(s: str) -> bytes:
    data = s.encode()
    n = len(data)
    head = bytes([0x60 + n]) if n < 24 else bytes([0x78, n]) if n < 256 else bytes([0x79]) + n.to_bytes(2, "big")
    return head + data


def _cbor_map(d: dict[str, str]) -> bytes:
    out = bytes([0xA0 + len(d)])
    for k, v in d.items():
        out += _cbor_text(k) + _cbor_text(v)
    return out


FAULT_ERRORS = {
    # fault: (HTTP status, error code, message, rest-json status)
    "throttle": (400, "ThrottlingException", "Rate exceeded", 429),
    "deny": (400, "AccessDenied", "User is not authorized to perform this action", 403),
}


def error_response(req: Request, fault: str) -> tuple[int, dict[str, str], bytes]:
    """An AWS error in the wire format of the request's protocol (CBOR, JSON, query XML, rest-json)."""
    status, code, message, rest_status = FAULT_ERRORS[fault]
    ctype = req.headers.get("content-type", "")
    if req.headers.get("smithy-protocol") == "rpc-v2-cbor":
        return (
            status,
            {"content-type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"},
            _cbor_map({"__type": code, "message": message}),
        )
    if "x-amz-json" in ctype:
        return (
            status,
            {"content-type": ctype, "x-amzn-query-error": f"{code};Sender"},
            json.dumps({"__type": code, "message": message}).encode(),
        )
    if "x-www-form-urlencoded" in ctype:
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}"
            "</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
        ).encode()
        return status, {"content-type": "text/xml"}, body
    return (
        rest_status,
        {"content-type": "application/json", "x-amzn-errortype": code},
        json.dumps({"message": message}).encode(),
    )


Fault = str  # "throttle" | "deny" | "error" | "drop" | "" (forward)


class FaultProxy:
    """A loopback HTTP proxy in front of `upstream` that can slow down or break calls.

    Set `latency` (seconds added to every call), `throttle_rate` / `error_rate` (shares of calls
    answered with a throttling error or an HTTP 500), `down` (every connection dropped), or a
    `rule(request) -> fault` callable for targeted faults. `counts` tallies what happened.
    """

    def __init__(self, upstream: str, *, latency: float = 0.0, seed: int = 7):
        up = urlsplit(upstream)
        self.upstream_host, self.upstream_port = up.hostname, up.port or 80
        self.latency = latency
        self.throttle_rate = 0.0
        self.error_rate = 0.0
        self.down = False
        self.rule: Callable[[Request], Fault] | None = None
        self.counts: dict[str, int] = {"forwarded": 0, "throttle": 0, "deny": 0, "error": 0, "drop": 0}
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.request_queue_size = 128
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset_faults(self) -> None:
        self.latency, self.throttle_rate, self.error_rate, self.down, self.rule = 0.0, 0.0, 0.0, False, None

    def _choose(self, req: Request) -> Fault:
        if self.down:
            return "drop"
        if self.rule is not None:
            fault = self.rule(req)
            if fault:
                return fault
        with self._lock:
            roll = self._random.random()
        if roll < self.throttle_rate:
            return "throttle"
        if roll < self.throttle_rate + self.error_rate:
            return "error"
        return ""

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def _forward(self, req: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = getattr(self._local, "conn", None)
        for attempt in (1, 2):
            if conn is None:
                conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
                self._local.conn = conn
            try:
                headers = {k: v for k, v in req.headers.items() if k not in ("connection", "keep-alive")}
                conn.request(req.method, req.path, body=req.body or None, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                conn.close()
                conn = self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Small header and body writes would otherwise wait on delayed ACKs (~40 ms a call).
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                if proxy.latency:
                    time.sleep(proxy.latency)
                fault = proxy._choose(req)
                if fault == "drop":
                    proxy._count("drop")
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if fault in FAULT_ERRORS:
                    proxy._count(fault)
                    self._reply(*error_response(req, fault))
                    return
                if fault == "error":
                    proxy._count("error")
                    self._reply(500, {"content-type": "text/plain"}, b"injected internal error")
                    return
                try:
                    status, headers, data = proxy._forward(req)
                except OSError as exc:
                    self._reply(502, {"content-type": "text/plain"}, f"upstream unreachable: {exc}".encode())
                    return
                proxy._count("forwarded")
                skip = {"transfer-encoding", "connection", "content-length", "keep-alive"}
                self._reply(status, {k: v for k, v in headers if k.lower() not in skip}, data)

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        return Handler
