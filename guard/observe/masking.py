"""The one mask for personal data (customer ids, phone numbers, e-mail addresses, WeChat ids, URLs, message
text), used by audit lines, logs and alerts alike.

`mask_pii` hides what is personal and keeps the length (offsets stay valid); `masked_excerpt` shows a short
window around a hit, never a whole message; `mask` hides all but the edges of a free text (an error detail,
a request id) after `mask_pii`.
"""

from __future__ import annotations

import re

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


def mask(text: str, keep: int = 1) -> str:
    """Personal data masked, then all but `keep` characters at each edge: `13812345678` → `*********`,
    a long error detail keeps its readable start and end."""
    text = mask_pii(text)
    if len(text) <= 2 * keep:
        return MASK * len(text)
    return text[:keep] + MASK * min(len(text) - 2 * keep, 8) + text[-keep:]
