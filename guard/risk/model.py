"""The alert value type, stream ids, and the masking of personal data in what an alert shows.

An alert never carries a customer's id, a phone number or a whole outbound message: only the
account, the staff member, the rule, the figures and a short masked excerpt around the hit.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from guard.config.risk import ALERT_LEVELS, AlertLevel

# Runs of digits long enough to be a phone, QQ or id number, however they are spaced or punctuated
# (138 1234 5678, 138-1234-5678, 138.1234.5678, fullwidth digits — `\d` is Unicode); shorter runs
# (prices, counts) stay readable.
_DIGIT_RUN = re.compile(r"\+?\d(?:[\d\s\-.·_/()（）]*\d)?")
_MIN_DIGITS = 5
# The same written in Chinese numerals (一三八…, 壹叁捌…).
_CN_DIGITS = "零〇一二两三四五六七八九壹贰叁肆伍陆柒捌玖幺"
_CN_DIGIT_RUN = re.compile(f"[{_CN_DIGITS}](?:[{_CN_DIGITS}\\s\\-.·]*[{_CN_DIGITS}])?")
# The lookbehind anchors the local part at the start of a word: without it every position inside a long
# word is a new start that scans to the word's end, and a 30 k-character message takes seconds.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+\s*(?:@|＠)\s*[\w-]+(?:\.[\w-]+)+")
_WXID = re.compile(r"(?i)(?:wxid_|wm|wo)[A-Za-z0-9_-]{6,}")
# A WeChat id is 6–20 letters, digits, `_` or `-` starting with a letter; one with a digit in it is
# masked (plain words are not ids), and so is any long token.
_HANDLE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z][A-Za-z0-9_-]{5,19}(?![A-Za-z0-9_-])")
_LONG_TOKEN = re.compile(r"[A-Za-z0-9_-]{21,}")
_URL = re.compile(r"(?i)(?:https?://|www\.)[^\s，。、；]+")
MASK = "*"
EXCERPT_CONTEXT = 6
_MASK_MARGIN = 64


def _blank(match: re.Match[str]) -> str:
    return MASK * len(match.group(0))


def mask_pii(text: str) -> str:
    """Replace phone numbers, long digit runs (also in Chinese numerals), emails, WeChat ids and handles,
    URLs and long tokens by `*`.

    Length-preserving on purpose: offsets of a match in the original text stay valid in the result.
    """
    for pattern in (_URL, _EMAIL, _WXID, _LONG_TOKEN):
        text = pattern.sub(_blank, text)

    def handle(match: re.Match[str]) -> str:
        token = match.group(0)
        return MASK * len(token) if any(c.isdigit() for c in token) else token

    text = _HANDLE.sub(handle, text)

    def digits(match: re.Match[str]) -> str:
        run = match.group(0)
        return MASK * len(run) if sum(c.isdigit() for c in run) >= _MIN_DIGITS else run

    def cn_digits(match: re.Match[str]) -> str:
        run = match.group(0)
        return MASK * len(run) if sum(c in _CN_DIGITS for c in run) >= 7 else run

    text = _DIGIT_RUN.sub(digits, text)
    return _CN_DIGIT_RUN.sub(cn_digits, text)


def masked_excerpt(text: str, start: int, end: int, context: int = EXCERPT_CONTEXT) -> str:
    """A short window around `text[start:end]` with personal data masked; never the whole message.

    The matched term is shown (the risk manager needs to see what fired); the context on each side is
    at most `context` characters and at most a quarter of the remaining text, so a short message is
    never reproduced in full.
    """
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    rest = len(text) - (end - start)
    ctx = max(0, min(context, rest // 4))
    lo, hi = max(0, start - ctx), min(len(text), end + ctx)
    # Mask only a margin around the window: enough to recognise a phone number or an address that the
    # window cuts through, and bounded, so a megabyte message costs no more than a short one.
    mlo, mhi = max(0, lo - _MASK_MARGIN), min(len(text), hi + _MASK_MARGIN)
    masked = mask_pii(text[mlo:mhi])
    # The term itself is shown as matched unless it is personal data (a detected phone number is masked).
    body = masked[lo - mlo : hi - mlo]
    body = body.replace("\n", " ").replace("\r", " ")
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """`"1700000000000-3"` → (1700000000000, 3), the order of Redis stream ids."""
    ms, _, seq = stream_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError as exc:
        raise ValueError(f"not a stream id: {stream_id!r} (expected MILLISECONDS-SEQUENCE)") from exc


def valid_stream_id(stream_id: str) -> bool:
    try:
        stream_id_key(stream_id)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert for the risk manager. `id` is the stream id, assigned when the store accepts it."""

    level: AlertLevel
    kind: str  # quota | content | complaint | account | system
    rule: str  # e.g. `add_friend.active/day`, `content:finance`, `complaints/day`, `redis_down`
    message_zh: str
    message_en: str
    account: str | None = None
    staff: str | None = None
    window: str = ""  # the window the alert belongs to, e.g. `2026-11-22` — one alert per window
    used: int | None = None
    limit: int | None = None
    attempts: int | None = None
    excerpt: str = ""
    at: float = field(default_factory=time.time)
    id: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def dedup_key(self) -> str:
        """What makes two alerts the same: (account, rule, level, window)."""
        return "|".join((self.account or "-", self.rule, self.level, self.window))

    def with_id(self, stream_id: str) -> Alert:
        return replace(self, id=stream_id)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["details"] = dict(self.details)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"), default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], stream_id: str | None = None) -> Alert:
        level = str(data.get("level", "system"))
        if level not in ALERT_LEVELS:
            level = "system"

        def opt_int(name: str) -> int | None:
            value = data.get(name)
            return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

        def opt_str(name: str) -> str | None:
            value = data.get(name)
            return str(value) if value is not None else None

        details = data.get("details")
        return cls(
            level=level,  # type: ignore[arg-type]
            kind=str(data.get("kind", "")),
            rule=str(data.get("rule", "")),
            message_zh=str(data.get("message_zh", "")),
            message_en=str(data.get("message_en", "")),
            account=opt_str("account"),
            staff=opt_str("staff"),
            window=str(data.get("window", "")),
            used=opt_int("used"),
            limit=opt_int("limit"),
            attempts=opt_int("attempts"),
            excerpt=str(data.get("excerpt", "")),
            at=float(data.get("at", 0.0) or 0.0),
            id=stream_id if stream_id is not None else str(data.get("id", "")),
            details=dict(details) if isinstance(details, Mapping) else {},
        )

    @classmethod
    def from_json(cls, raw: str | bytes, stream_id: str | None = None) -> Alert:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("an alert is a JSON object")
        return cls.from_dict(data, stream_id)
