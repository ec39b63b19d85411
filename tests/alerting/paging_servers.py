"""Local stand-ins for the paging services, on 127.0.0.1, implementing the parts opsboard uses.

- `PagerDuty`: the Events API v2 enqueue endpoint. It checks each event as the API documents it
  (routing key of 32 characters, event_action, dedup_key, a trigger's payload with summary ≤ 1024,
  source, severity in critical/error/warning/info, an ISO 8601 timestamp, links with href) and answers
  400 `{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}` when wrong,
  202 `{"status": "success", "message": "Event processed", "dedup_key": ...}` when right.
- `Opsgenie`: the Alert API's create, acknowledge and close, with `Authorization: GenieKey <key>`
  (401 otherwise), the documented limits (message ≤ 130, alias ≤ 512, description ≤ 15000, priority
  P1–P5, tags and details of strings) answered 422 with `{"message", "errors", "took", "requestId"}`,
  and 202 `{"result": "Request will be processed", "took": …, "requestId": …}` when accepted. It keeps
  each alert's state by alias.
- `Receiver`: any POST recorded with its raw body and headers (for the signed JSON webhook).

Each can be told to answer the next requests with given statuses (`replies`), for the retry paths.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

PD_SEVERITIES = {"critical", "error", "warning", "info"}
PD_ACTIONS = {"trigger", "acknowledge", "resolve"}
OG_PRIORITIES = {"P1", "P2", "P3", "P4", "P5"}


class Fake:
    """A server's recorded requests and queued replies ((status, json body) pairs, then the normal answer)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.replies: list[tuple[int, dict]] = []
        self.url = ""

    def handle(self, method: str, path: str, headers: dict, raw: bytes) -> tuple[int, dict | None]:
        raise NotImplementedError

    @property
    def bodies(self) -> list:
        return [r["json"] for r in self.requests]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        fake: Fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        fake.requests.append({"path": self.path, "headers": dict(self.headers), "raw": raw, "json": parsed})
        status, body = fake.replies.pop(0) if fake.replies else fake.handle("POST", self.path, self.headers, raw)
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Running:
    """Start `fake` on an ephemeral loopback port; `with Running(fake) as f:` or start()/stop()."""

    def __init__(self, fake: Fake, path: str = ""):
        self.fake, self.path = fake, path
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.fake = fake
        fake.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def start(self) -> Fake:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self.fake

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Fake:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- PagerDuty Events API v2 -------------------------------------------------------------------------


def _is_iso(text) -> bool:
    try:
        datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def pagerduty_errors(event) -> list[str]:
    """What the Events API v2 would reject in `event`, in its own words (roughly)."""
    if not isinstance(event, dict):
        return ["Event object is not a JSON object"]
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in PD_ACTIONS:
        errors.append("'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is missing or not an object"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary or len(summary) > 1024:
            errors.append("'payload.summary' is missing, blank or longer than 1024 characters")
        if not isinstance(payload.get("source"), str) or not payload.get("source"):
            errors.append("'payload.source' is missing or blank")
        if payload.get("severity") not in PD_SEVERITIES:
            errors.append("'payload.severity' is invalid (must be one of critical, error, warning, info)")
        if "timestamp" in payload and not _is_iso(payload["timestamp"]):
            errors.append("'payload.timestamp' is not a valid ISO 8601 timestamp")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            errors.append("'payload.custom_details' must be an object")
        for link in event.get("links", []):
            if not isinstance(link, dict) or not isinstance(link.get("href"), str):
                errors.append("'links' entries need an 'href'")
    return errors


class PagerDuty(Fake):
    def handle(self, method, path, headers, raw):
        if urlsplit(path).path != "/v2/enqueue":
            return 404, {"status": "not found", "message": "Not found"}
        try:
            event = json.loads(raw)
        except ValueError:
            return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["not JSON"]}
        errors = pagerduty_errors(event)
        if errors:
            return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        return 202, {
            "status": "success",
            "message": "Event processed",
            "dedup_key": event.get("dedup_key") or uuid.uuid4().hex,
        }

    @property
    def actions(self) -> list[tuple[str, str]]:
        return [(b["event_action"], b["dedup_key"]) for b in self.bodies]


# --- Opsgenie Alert API ------------------------------------------------------------------------------


def _accepted() -> tuple[int, dict]:
    return 202, {"result": "Request will be processed", "took": 0.011, "requestId": str(uuid.uuid4())}


def _unprocessable(errors: dict) -> tuple[int, dict]:
    return 422, {
        "message": "Request body is not processable. Please check the errors.",
        "errors": errors,
        "took": 0.002,
        "requestId": str(uuid.uuid4()),
    }


def opsgenie_create_errors(body) -> dict:
    if not isinstance(body, dict):
        return {"body": "Request body must be a JSON object."}
    errors = {}
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        errors["message"] = "Message can not be empty."
    elif len(message) > 130:
        errors["message"] = "Message can not be longer than 130 characters."
    limits = {"alias": 512, "description": 15000, "entity": 512, "source": 100, "user": 100, "note": 25000}
    for name, limit in limits.items():
        if name in body and (not isinstance(body[name], str) or len(body[name]) > limit):
            errors[name] = f"{name} can not be longer than {limit} characters."
    if "priority" in body and body["priority"] not in OG_PRIORITIES:
        errors["priority"] = "Priority should be one of [P1, P2, P3, P4, P5]."
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and len(t) <= 50 for t in tags):
        errors["tags"] = "Tags must be strings of at most 50 characters."
    details = body.get("details", {})
    if not isinstance(details, dict) or not all(isinstance(v, str) for v in details.values()):
        errors["details"] = "Details must be a map of strings."
    return errors


class Opsgenie(Fake):
    def __init__(self, key: str):
        super().__init__()
        self.key = key
        self.alerts: dict[str, dict] = {}  # alias -> {"status": open/acknowledged/closed, "body": ...}

    def handle(self, method, path, headers, raw):
        if headers.get("Authorization") != f"GenieKey {self.key}":
            return 401, {"message": "Could not authenticate", "took": 0.0, "requestId": str(uuid.uuid4())}
        parts = urlsplit(path)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return _unprocessable({"body": "Request body is not valid JSON."})
        if segments == ["v2", "alerts"]:
            errors = opsgenie_create_errors(body)
            if errors:
                return _unprocessable(errors)
            alias = body.get("alias") or str(uuid.uuid4())
            self.alerts.setdefault(alias, {"status": "open", "body": body, "count": 0})["count"] += 1
            return _accepted()
        if len(segments) == 4 and segments[:2] == ["v2", "alerts"] and segments[3] in ("acknowledge", "close"):
            if parse_qs(parts.query).get("identifierType") != ["alias"]:
                return _unprocessable({"identifierType": "Expected identifierType=alias in this test server."})
            errors = {k: v for k, v in opsgenie_create_errors({"message": "x", **body}).items() if k != "message"}
            if errors:
                return _unprocessable(errors)
            if segments[2] in self.alerts:  # Opsgenie accepts and processes later; unknown aliases fail there
                self.alerts[segments[2]]["status"] = "acknowledged" if segments[3] == "acknowledge" else "closed"
            return _accepted()
        return 404, {"message": "Not found", "took": 0.0, "requestId": str(uuid.uuid4())}


# --- a plain receiver ---------------------------------------------------------------------------------


class Receiver(Fake):
    def handle(self, method, path, headers, raw):
        return 200, {"ok": True}
