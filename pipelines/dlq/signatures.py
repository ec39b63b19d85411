"""Failure signatures: which DLQ messages failed the same way. Pure, tested without AWS.

A signature is made from the consumer's failure line for a message (and the traceback logged with
it): the exception's type, its message with the parts that differ from one message to the next
(numbers, UUIDs, hex ids, long tokens, quoted values, e-mail addresses, timestamps) replaced by
placeholders, and the innermost frame of the traceback (file and function; line numbers are dropped
so a group keeps its signature across a deploy). A quoted bare identifier in a KeyError- or
AttributeError-like message is kept: the missing key *is* the fault (`KeyError: 'customer_id'`).

A message for which no failure line was found is grouped by the shape of its body: the top-level
keys of a JSON object with their value types, "JSON array", or "not JSON". No value is kept.

`Signature.digest` is stable (the same failure gives the same digest in every scan), which is how
a group is compared with the previous scan's.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from pipelines.trace.logs import RUNTIME_LINE_RE, is_error_line, parse_json

ERROR = "error"
SHAPE = "shape"
#: Separates a title's failure from the frame it happened in; `short_title` cuts there.
FRAME_SEP = " — in "
TITLE_MAX = 300
#: Keys named in a shape's title (the digest covers them all).
SHAPE_KEYS_SHOWN = 12
#: Lambda's own line when a function runs out of time (no exception is raised).
TIMEOUT_RE = re.compile(r"Task timed out after [\d.]+ seconds")

#: Exception types whose quoted bare identifier names the fault (a missing key, attribute, name).
#: Node's TypeError is its AttributeError: "Cannot read properties of undefined (reading 'id')".
NAMING_TYPES = (
    "KeyError",
    "AttributeError",
    "NameError",
    "ImportError",
    "ModuleNotFoundError",
    "ReferenceError",
    "TypeError",
)
TYPE_SUFFIXES = ("Error", "Exception", "Exit", "Interrupt", "Fault", "Failure", "Timeout", "Warning")
TYPE_LINE_RE = re.compile(r"^((?:[A-Za-z_]\w*\.)*[A-Z]\w*)(?::\s*(.*))?$")
PY_FRAME_RE = re.compile(r'^\s*File "([^"]+)", line \d+, in (\S+)')
NODE_FRAME_RE = re.compile(r"^\s*at (?:(?:async )?(\S+) \()?([^()\s]+?)(?::\d+){1,2}\)?\s*$")
LEVEL_PREFIX_RE = re.compile(r"^\[?(?:ERROR|Error|CRITICAL|FATAL|WARN(?:ING)?)\]?(?=\s)\s*(?:Invoke Error\s*)?")

# The placeholders, applied in this order (timestamps and ids before the numbers inside them).
_TIMESTAMP = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b|\b\d{2}:\d{2}:\d{2}(?:\.\d+)?\b"
)
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b")
_TOKEN = re.compile(r"(?<![\w/+=-])(?=[\w/+=-]*\d)[\w/+=-]{20,}(?![\w/+=-])")
_QUOTED = re.compile(r"'([^'\n]*)'|\"([^\"\n]*)\"")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?![\w])")
_BARE_IDENTIFIER = re.compile(r"^[A-Za-z_][\w.-]{0,63}$")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Failure:
    """An exception as a log line tells it: type (may be empty), message, innermost frame (may be empty)."""

    type: str
    message: str
    frame: str = ""


@dataclass(frozen=True)
class Signature:
    kind: str  # ERROR or SHAPE
    title: str
    digest: str


def _digest(kind: str, key: str) -> str:
    return hashlib.sha256(f"{kind}\n{key}".encode()).hexdigest()


def _keeps_quoted(error_type: str) -> bool:
    name = error_type.rsplit(".", 1)[-1]
    return any(name.endswith(t) for t in NAMING_TYPES)


def normalise(message: str, error_type: str = "") -> str:
    """The message with what varies between occurrences replaced by placeholders."""
    keep_identifiers = _keeps_quoted(error_type)

    def quoted(m: re.Match) -> str:
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        if keep_identifiers and _BARE_IDENTIFIER.match(inner):
            return m.group(0)
        return "'<str>'" if m.group(1) is not None else '"<str>"'

    text = _QUOTED.sub(quoted, message)
    text = _TIMESTAMP.sub("<time>", text)
    text = _UUID.sub("<uuid>", text)
    text = _EMAIL.sub("<email>", text)
    text = _HEX.sub("<hex>", text)
    text = _TOKEN.sub("<token>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACES.sub(" ", text).strip()


def _type_line(line: str) -> tuple[str, str] | None:
    """(type, message) when the line is "Type: message" (or a bare known exception type)."""
    m = TYPE_LINE_RE.match(line.strip())
    if not m:
        return None
    name = m.group(1).rsplit(".", 1)[-1]
    if not (name.endswith(TYPE_SUFFIXES) or name in ("Error", "Exception", "StopIteration")):
        return None
    return m.group(1), (m.group(2) or "").strip()


def _frame(lines: list[str]) -> str:
    """The innermost frame: the last of a Python traceback, the first "at" line of a Node stack."""
    py = [m for line in lines if (m := PY_FRAME_RE.match(line))]
    if py:
        return f"{py[-1].group(1)} in {py[-1].group(2)}"
    for line in lines:
        if m := NODE_FRAME_RE.match(line):
            return f"{m.group(2)} in {m.group(1)}" if m.group(1) else m.group(2)
    return ""


def _strip_runtime(line: str) -> str:
    """The message a runtime wrote, without its "[LEVEL]\\ttime\\tinvocation id\\t" prefix."""
    m = RUNTIME_LINE_RE.search(line)
    text = line[m.end() :] if m else line
    return LEVEL_PREFIX_RE.sub("", text.lstrip(), count=1).strip()


def from_text(text: str) -> Failure | None:
    """The failure told by plain text: a Python traceback (its last "Type: msg" line and last frame),
    a Node stack ("Error: msg" then "at …" lines), a "Type: msg" line, or Lambda's timeout line."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    frame = _frame(lines)
    for line in reversed(lines):  # the last exception line wins (a chained traceback's final one)
        if line.startswith((" ", "\t")):
            continue
        found = _type_line(_strip_runtime(line))
        if found:
            return Failure(found[0], found[1], frame)
    timeout = TIMEOUT_RE.search(text)
    if timeout:
        return Failure("", timeout.group(0), frame)
    return None


def _stack_text(data: dict) -> str:
    stack = data.get("stackTrace", data.get("stack", ""))
    if isinstance(stack, list):
        return "\n".join(str(s).rstrip("\n") for s in stack)
    return str(stack or "")


def from_json(data: dict) -> Failure | None:
    """The failure a JSON log line tells: errorType/errorMessage (Lambda's own), an "error" field
    (text, or {type, message}), else the line's "message"."""
    stack = _stack_text(data)
    frame = _frame(stack.splitlines())
    if data.get("errorType") or data.get("errorMessage"):
        return Failure(str(data.get("errorType") or ""), str(data.get("errorMessage") or ""), frame)
    error = data.get("error")
    if isinstance(error, dict):
        kind = error.get("type") or error.get("name") or error.get("errorType") or ""
        msg = error.get("message") or error.get("errorMessage") or ""
        return Failure(str(kind), str(msg), frame or _frame(_stack_text(error).splitlines()))
    if isinstance(error, str) and error.strip():
        told = from_text(error)
        return Failure(told.type, told.message, told.frame or frame) if told else Failure("", error.strip(), frame)
    if stack:
        told = from_text(stack)
        if told:
            return told
    message = data.get("message") or data.get("msg")
    return Failure("", str(message), frame) if message else None


def parse_failure(line: str, traceback: str = "") -> Failure | None:
    """The failure in an error line and the traceback logged after it (either may tell it; the
    traceback's exception and frame are preferred, being the complete account)."""
    inner = _strip_runtime(line)
    data = parse_json(inner) or parse_json(line)
    if data is None and "{" in inner:
        data = parse_json(inner[inner.index("{") :])  # Node: "Invoke Error \t{…}"
    told = from_json(data) if data is not None else from_text(line)
    from_tb = from_text(traceback) if traceback else None
    if from_tb and (told is None or not told.type or from_tb.type):
        return Failure(from_tb.type, from_tb.message, from_tb.frame or (told.frame if told else ""))
    if told and not told.frame and traceback:
        return Failure(told.type, told.message, _frame(traceback.splitlines()))
    if told is None and inner:
        return Failure("", inner.splitlines()[0])
    return told


def is_failure_line(line: str) -> bool:
    """Whether a consumer line reports a failure (an error line, or Lambda's timeout)."""
    return is_error_line(line) or bool(TIMEOUT_RE.search(line))


def error_signature(failure: Failure) -> Signature:
    head = normalise(failure.message, failure.type)
    if failure.type:
        head = f"{failure.type}: {head}" if head else failure.type
    head = head or "Failure with no message"
    key = f"{head}{FRAME_SEP}{failure.frame}" if failure.frame else head
    return Signature(ERROR, _clip(key), _digest(ERROR, key))


def signature_of(line: str, traceback: str = "") -> Signature:
    """The signature of a failure line (and the traceback logged with it)."""
    failure = parse_failure(line, traceback) or Failure("", line)
    return error_signature(failure)


def _kind_of(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def shape_signature(body: str) -> Signature:
    """The shape of a message body: `JSON object {amount: number, customer: string}`, `JSON array`,
    `JSON string` (any other JSON value), or `not JSON`."""
    try:
        value = json.loads(body)
    except (ValueError, TypeError):
        return Signature(SHAPE, "not JSON", _digest(SHAPE, "not JSON"))
    if isinstance(value, dict):
        fields = [f"{k}: {_kind_of(v)}" for k, v in sorted(value.items())]
        shown = fields[:SHAPE_KEYS_SHOWN] + (
            [f"… {len(fields) - SHAPE_KEYS_SHOWN} more"] if len(fields) > SHAPE_KEYS_SHOWN else []
        )
        key = "JSON object {" + ", ".join(fields) + "}"
        return Signature(SHAPE, _clip("JSON object {" + ", ".join(shown) + "}"), _digest(SHAPE, key))
    title = f"JSON {_kind_of(value)}"
    return Signature(SHAPE, title, _digest(SHAPE, title))


def short_title(title: str) -> str:
    """A group's title without the frame it happened in (for one-line summaries)."""
    return title.split(FRAME_SEP, 1)[0]


def _clip(text: str) -> str:
    return text if len(text) <= TITLE_MAX else text[: TITLE_MAX - 1] + "…"
