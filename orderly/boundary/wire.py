"""A page's JSON body into Python values, where one poison record costs one record, never its page.

The fast path is orjson on the whole page. What orjson refuses but JSON allows (a lone surrogate escape, an
integer past 64 bits) goes to the standard parser. What neither can hold (a record nested past MAX_DEPTH
levels, an integer of thousands of digits: the standard parser recurses, and Python refuses to convert more
than 4300 digits) is found by an iterative scan of the page: each record of the envelope's list is decoded
on its own, and a record that cannot be is replaced by an `Undecodable` the validation quarantines with its
reason. A page whose text is not JSON at all is still refused whole (retried: likely a broken transfer).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import orjson

from domain.bounds import MAX_INT


class NotJson(Exception):
    """The body is not JSON text (the caller retries the page)."""


MAX_DEPTH = 1024  # levels of nesting in one record: orjson's own limit, the most any decoder here accepts
MAX_DIGITS = 100  # an integer literal longer than this is kept as its digit count (a 64-bit int has at most 19)
EVIDENCE = 10_000  # characters of an undecodable record's text kept as evidence in the quarantine


class NotUnicode:
    """A JSON string holding a lone surrogate: not text (nothing could store or show it), so the schema
    rejects it as a wrong type; it reads as its escaped form in reasons and quarantined records."""

    __slots__ = ("escaped",)

    def __init__(self, value: str) -> None:
        self.escaped = value.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")

    def __repr__(self) -> str:
        return f"'{self.escaped}' (not valid Unicode)"

    __str__ = __repr__


class LongInteger:
    """An integer literal of more than MAX_DIGITS digits: far out of any range, so the schema rejects it as
    such. Kept as its text: converting it costs quadratic time, and Python refuses past 4300 digits."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal

    @property
    def digits(self) -> int:
        return len(self.literal.lstrip("-"))

    def __repr__(self) -> str:
        return f"an integer with {self.digits} digits ({self.literal[:20]}...)"

    __str__ = __repr__


class Undecodable:
    """One record of a page that no decoder here can hold; validation quarantines it with `reason`
    (a sentence starting "record:") and keeps the start of its text as evidence."""

    __slots__ = ("reason", "text")

    def __init__(self, reason: str, raw: bytes) -> None:
        self.reason = reason
        shown = raw[:EVIDENCE].decode("utf-8", "replace")
        self.text = shown if len(raw) <= EVIDENCE else f"{shown}... (cut; {len(raw)} bytes)"

    def __repr__(self) -> str:
        return f"<{self.reason}>"

    __str__ = __repr__


# ---- whole page ------------------------------------------------------------------------------------------

# orjson reads an integer past 64 bits as a float, silently: 2**64 would arrive as 1.8446744073709552e+19.
# Any integer literal that could be past the bounds (20 digits, or a negative of 19) goes to the exact parser.
_WIDE_INTEGER = re.compile(rb"[0-9]{20}|-[0-9]{19}")
# The regex tries both branches at every byte: 2.4 of 12.9 s of fetching 300k orders (issue 13's profile).
# Each branch needs 19 digits in a row, so a page without such a run is cleared with two C passes (digits
# mapped to "0", then a substring search) and only a page with one is given to the regex.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


def _may_hold_wide_integer(content: bytes) -> bool:
    return _NINETEEN_DIGITS in content.translate(_DIGITS_AS_ZERO) and _WIDE_INTEGER.search(content) is not None


def _integer(literal: str) -> int | LongInteger:
    return int(literal) if len(literal) <= MAX_DIGITS else LongInteger(literal)


def _standard(content: bytes | str) -> Any:
    """The standard parser: exact integers (the long ones as LongInteger), lone surrogates as NotUnicode.
    Raises ValueError for text that is not JSON, RecursionError for nesting past Python's stack."""
    return _mark_bad_text(json.loads(content, parse_int=_integer))


def decode_json(content: bytes) -> Any:
    """orjson, and the standard parser for what orjson refuses but JSON allows; raises NotJson."""
    if not _may_hold_wide_integer(content):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    try:
        return _standard(content)
    except (ValueError, RecursionError):
        raise NotJson("the body is not JSON") from None


def decode_page(content: bytes, records_key: str) -> Any:
    """The page, its `records_key` list decoded record by record when the page as a whole cannot be:
    a record no decoder holds becomes an Undecodable. Raises NotJson for a body that is not JSON text."""
    try:
        return decode_json(content)
    except NotJson:
        pass
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise NotJson("the body is not JSON") from None  # nor UTF-8
    return _decode_by_record(text, records_key)


def _mark_bad_text(value: Any) -> Any:
    """Replace every string that cannot be encoded as UTF-8 by NotUnicode (the rare path: orjson refused it).
    Iterative: a value here may be nested as deep as the standard parser allows."""
    if isinstance(value, str):
        return _checked_text(value)
    if not isinstance(value, (list, dict)):
        return value
    pending = [value]
    while pending:
        container = pending.pop()
        items = enumerate(container) if isinstance(container, list) else container.items()
        for key, item in list(items):
            if isinstance(item, str):
                checked = _checked_text(item)
                if checked is not item:
                    container[key] = checked
            elif isinstance(item, (list, dict)):
                pending.append(item)
        if isinstance(container, dict) and any(_checked_text(k) is not k for k in container):
            marked = {_key_text(k): v for k, v in container.items()}
            container.clear()
            container.update(marked)
    return value


def _checked_text(value: str) -> str | NotUnicode:
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return NotUnicode(value)


def _key_text(key: str) -> str:
    """A key holding a lone surrogate, as its escaped text (a key must stay a str)."""
    checked = _checked_text(key)
    return key if checked is key else checked.escaped


# ---- record by record ------------------------------------------------------------------------------------

# JSON's structure without recursion: strings (skipped whole: they may hold brackets), brackets, commas, colons.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]', re.DOTALL)
_CLOSER = {"[": "]", "{": "}"}
_BLANK = " \t\r\n"
_STORED = -2  # value_at once the records list is stored


def _decode_by_record(text: str, records_key: str) -> dict[str, Any]:
    """The envelope (an object) member by member, its `records_key` list element by element, from one
    iterative scan of the text: brackets are matched on a list, not the call stack, and each span found is
    handed to the decoders on its own."""
    if not text.lstrip(_BLANK).startswith("{"):
        _not_json()
    members: dict[str, Any] = {}
    closers: list[str] = []  # the closers expected, innermost last
    key: str | None = None  # the envelope member being read
    value_at = -1  # where its value starts (after the colon); -1: no colon yet
    records: list[Any] | None = None  # the records list being read, when inside it
    record_at, deepest = 0, 0  # where the current record starts; the deepest level seen in it
    end = -1
    for token in _TOKEN.finditer(text):
        symbol, at = token.group(), token.start()
        depth = len(closers)
        if symbol[0] == '"':
            if depth == 1 and value_at == -1:
                if key is not None:
                    _not_json()
                key = _key(symbol)
        elif symbol in _CLOSER:
            if (
                depth == 1
                and key == records_key
                and symbol == "["
                and value_at >= 0
                and not text[value_at:at].strip(_BLANK)
            ):
                records, record_at, deepest = [], at + 1, 0
            closers.append(_CLOSER[symbol])
            if records is not None:
                deepest = max(deepest, len(closers) - 2)
        elif symbol in "]}":
            if not closers or closers.pop() != symbol:
                _not_json()
            if len(closers) == 1 and records is not None:  # the records list is closed
                if records or text[record_at:at].strip(_BLANK):
                    records.append(_record(text[record_at:at], deepest))
                members[key] = records
                records, value_at = None, _STORED
            elif not closers:  # the envelope is closed
                if key is not None:
                    _store(members, key, text, value_at, at)
                end = at + 1
                break
        elif symbol == ":":
            if depth == 1:
                if key is None or value_at != -1:
                    _not_json()
                value_at = at + 1
        elif depth == 2 and records is not None:  # a comma between records
            records.append(_record(text[record_at:at], deepest))
            record_at, deepest = at + 1, 0
        elif depth == 1:  # a comma between members
            if key is None:
                _not_json()
            _store(members, key, text, value_at, at)
            key, value_at = None, -1
    if end < 0 or text[end:].strip(_BLANK):
        _not_json()
    return members


def _key(symbol: str) -> str:
    """An envelope member's name; a string JSON does not allow (a raw control character in it) is no name."""
    try:
        return _standard(symbol)
    except ValueError:
        _not_json()


def _store(members: dict[str, Any], key: str, text: str, value_at: int, stop: int) -> None:
    """A member that is not the records list (a cursor, a page count): decoded whole. For the records list,
    already stored, only blanks may follow it."""
    if value_at == _STORED:
        if text[text.rfind("]", 0, stop) + 1 : stop].strip(_BLANK):
            _not_json()
        return
    if value_at < 0:
        _not_json()
    try:
        members[key] = _standard(text[value_at:stop])
    except (ValueError, RecursionError):
        _not_json()


def _record(text: str, depth: int) -> Any:
    """One record, decoded alone; Undecodable when it is nested too deep for the decoders."""
    if not text.strip(_BLANK):
        _not_json()  # an empty element: `[,` or `,,` or `,]`
    raw = text.encode("utf-8", "surrogatepass")
    if depth > MAX_DEPTH:
        return Undecodable(f"record: nested deeper than {MAX_DEPTH} levels", raw)
    try:
        return decode_json(raw)
    except NotJson:
        pass
    try:
        _standard(text)
    except RecursionError:
        return Undecodable(f"record: nested too deep to decode ({depth} levels)", raw)
    except ValueError:
        pass
    _not_json()


def _not_json() -> Any:
    raise NotJson("the body is not JSON")


# ---- back to text ---------------------------------------------------------------------------------------


def clipped_json(value: Any, limit: int) -> str:
    """`value` as JSON text, cut after about `limit` characters: iterative (a record may be nested a thousand
    levels, past what repr or json.dumps can recurse) and it stops early (a record may be megabytes). The
    markers read as their evidence: a LongInteger as its digit count, an Undecodable as its text's start."""
    out: list[str] = []
    size = 0
    pending: list[Any] = [value]  # values still to write, and the literal text between them (as _Text)
    while pending and size <= limit:
        item = pending.pop()
        if type(item) is _Text:
            piece = item.text
        elif isinstance(item, dict):
            pending.append(_Text("}"))
            entries = list(item.items())
            for index in range(len(entries) - 1, -1, -1):
                key, member = entries[index]
                pending.append(member)
                pending.append(_Text(("," if index else "") + json.dumps(str(key)) + ":"))
            piece = "{"
        elif isinstance(item, list):
            pending.append(_Text("]"))
            for index in range(len(item) - 1, -1, -1):
                pending.append(item[index])
                if index:
                    pending.append(_Text(","))
            piece = "["
        elif isinstance(item, Undecodable):
            piece = item.text
        elif isinstance(item, LongInteger):
            piece = item.literal[: limit + 1]
        elif isinstance(item, NotUnicode):
            piece = json.dumps(str(item))
        elif isinstance(item, str):
            piece = json.dumps(item[: limit + 1])
        elif isinstance(item, (bool, int, float)) or item is None:
            piece = json.dumps(item) if not isinstance(item, int) or abs(item) < 10**MAX_DIGITS else "?"
        else:
            piece = json.dumps(str(item)[: limit + 1])
        out.append(piece)
        size += len(piece)
    text = "".join(out)
    return text if size <= limit and not pending else text[:limit]


class _Text:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


# ---- envelopes -------------------------------------------------------------------------------------------


class Envelope:
    """A page's shape check (None when the page is right, else what is wrong) and the key of its records list,
    which the decoder reads record by record when it must."""

    def __init__(self, records_key: str, check: Callable[[Any], str | None]) -> None:
        self.records_key = records_key
        self.check = check

    def __call__(self, body: Any) -> str | None:
        return self.check(body)


def _orders_page(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("orders"), list):
        return "no 'orders' list"
    if "next_after_id" not in body:
        return "no 'next_after_id'"
    cursor = body["next_after_id"]
    if cursor is not None and not (type(cursor) is int and 0 <= cursor <= MAX_INT):
        return f"'next_after_id' is neither null nor an integer in 0..2**63-1: {str(cursor)[:40]}"
    return None


orders_envelope = Envelope("orders", _orders_page)


def stock_envelope(page: int) -> Envelope:
    def check(body: Any) -> str | None:
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            return "no 'items' list"
        if type(body.get("total_pages")) is not int or not 0 <= body["total_pages"] <= MAX_INT:
            return "no 'total_pages' integer in 0..2**63-1"
        if body.get("page") not in (None, page):
            return f"asked for page {page}, got page {str(body.get('page'))[:40]}"
        return None

    return Envelope("items", check)
