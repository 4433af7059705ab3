"""Strict reading of a guarded request body: size limit, content encoding, content type, UTF-8, JSON
without duplicate keys (anywhere) or non-standard constants. Anything else is a `BodyError` naming why —
the proxy answers it in the profile's format and forwards nothing.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from typing import Any

from guard.core import codes
from guard.core.codes import GuardCode


class BodyError(Exception):
    """A guarded request the guard refuses to interpret. `code` is the guard code, `detail` says why
    (English, technical; shown to the client after the code's bilingual text)."""

    def __init__(self, code: GuardCode, detail: str, *, where: str = "") -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.where = where


JSON_TYPES = ("application/json", "text/json", "text/plain")
DECODABLE = ("gzip", "x-gzip", "deflate", "identity")


def check_content_type(content_type: str | None) -> None:
    """Guarded routes carry JSON. Clients often send JSON as `text/plain` (the WeCom docs' curl does);
    an absent type is accepted too. Forms, multipart or binary are refused: they would not be scanned."""
    if not content_type:
        return
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in JSON_TYPES or (mime.startswith("application/") and mime.endswith("+json")):
        return
    raise BodyError(codes.UNSUPPORTED_BODY, f"content type {mime!r} is not JSON")


def decode_content(body: bytes, encodings: Iterable[str], limit: int) -> bytes:
    """Undo `Content-Encoding` (applied in order, so undone in reverse) without ever holding more than
    `limit` decoded bytes: a small gzip bomb is refused as too large, not inflated."""
    layers = [e.strip().lower() for e in encodings if e.strip()]
    data = body
    for encoding in reversed(layers):
        if encoding == "identity":
            continue
        if encoding in ("gzip", "x-gzip"):
            wbits = 16 + zlib.MAX_WBITS
        elif encoding == "deflate":
            # RFC 9110 "deflate" is zlib-wrapped; some clients send raw deflate. Try the standard first.
            wbits = zlib.MAX_WBITS
            if not data or (data[0] & 0x0F) != 8:
                wbits = -zlib.MAX_WBITS
        else:
            raise BodyError(codes.UNSUPPORTED_BODY, f"content encoding {encoding!r} is not supported")
        decoder = zlib.decompressobj(wbits)
        try:
            out = decoder.decompress(data, limit + 1)
            if len(out) > limit or decoder.unconsumed_tail:
                raise BodyError(codes.BODY_TOO_LARGE, f"decoded body is over the limit of {limit} bytes")
            out += decoder.flush()
        except zlib.error as exc:
            raise BodyError(codes.BAD_REQUEST, f"body is not valid {encoding}: {exc}") from None
        if not decoder.eof:
            raise BodyError(codes.BAD_REQUEST, f"body is truncated {encoding} data")
        if decoder.unused_data:
            raise BodyError(codes.BAD_REQUEST, f"trailing bytes after the {encoding} data")
        if len(out) > limit:
            raise BodyError(codes.BODY_TOO_LARGE, f"decoded body is over the limit of {limit} bytes")
        data = out
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)  # built in C; a duplicate key shows as a shorter dict
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BodyError(codes.BAD_REQUEST, f"duplicate key {key!r} in a JSON object", where=key)
            seen.add(key)
    return out


def _no_constant(name: str) -> Any:
    raise BodyError(codes.BAD_REQUEST, f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def parse_json(raw: bytes) -> Any:
    """Strict UTF-8 (a UTF-8 BOM is tolerated), strict JSON, duplicate keys refused at any depth."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(codes.BAD_REQUEST, f"body is not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise BodyError(codes.BAD_REQUEST, "body is empty; a JSON object is required")
    try:
        value, end = _DECODER.raw_decode(text, _skip_ws(text, 0))
    except json.JSONDecodeError as exc:
        raise BodyError(
            codes.BAD_REQUEST, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise BodyError(codes.BAD_REQUEST, "JSON nested too deeply") from None
    if text[_skip_ws(text, end) :]:
        raise BodyError(codes.BAD_REQUEST, "extra data after the JSON value")
    return value


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos
