"""Contact-detail detectors: mainland mobile numbers, WeChat ids, QQ numbers, URLs, e-mail addresses.

They run over the DETECT folding (`rules.normalize`): full-width, circled and other-script digits and
Chinese / financial numerals are already ASCII digits (①③⑧, 一三八, 壹叁捌 → 138), letters are lower case,
invisible characters are gone, punctuation is kept (in its NFKC form) so URLs and addresses keep their shape.

Precision rules (no hit on order numbers, prices, dates):
* a mobile number is exactly 11 digits 1[3-9]xxxxxxxxx (optionally after +86 / 0086 / 86); the digits may be
  separated by spaces, dashes, dots, slashes, stars, emoji …, at most three between two digits; commas,
  colons, currency signs and the like end a number, so lists of prices or times never join into one;
* a digit run that continues before or after the 11 digits (even across such separators) is not a phone:
  order numbers, ID-card numbers and timestamps are longer; a number right after 订单 / 单号 / 编号 /
  流水 / 快递 / 运单 / order / no. is an order number;
* a WeChat id needs a keyword (微信, vx, V信, 加V, wechat …) in front, or the wxid_ prefix; a letters-only
  id also needs an explicit marker (号, id, :, 是) so that "企业微信wework" is prose, not an id;
* a QQ number needs QQ / 扣扣 / 企鹅 in front and has 5–12 digits;
* a bare domain needs a known top-level domain; e-mail needs a local part, @ (or (at) / 艾特) and a domain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rules.normalize import DetectView, detect_text, detect_view, is_cjk

_SEP_CHARS = (
    r"\s\-_.·•*~|/\\—–‐‑‒―−⁃"  # spacing and dash-like
    r"\u2190-\u21ff\u2600-\u27bf\u2b00-\u2bff\U0001f000-\U0001faff"  # arrows, dingbats, emoji
)
SEP = f"[{_SEP_CHARS}]"
GAP = f"{SEP}{{0,3}}"
_DIGIT_AFTER = re.compile(f"^{SEP}{{0,3}}\\d")

_DIGIT_CLUSTER = re.compile(f"\\d(?:{GAP}\\d)*")
_NOT_DIGIT = re.compile(r"\D+")
_NOT_DIGIT_OR_LETTER = re.compile(r"[^0-9a-z]+")
_GROUP_SEP = r"[\s,，、.。;；:：\-_/|]{1,3}"
_GROUP_AFTER = re.compile(_GROUP_SEP + r"\d")
_GROUP_BEFORE = re.compile(r"\d" + _GROUP_SEP + "$")
_PHONE_344 = re.compile(r"(?<!\d)1[3-9]\d" + _GROUP_SEP + r"\d{4}" + _GROUP_SEP + r"\d{4}(?!\d)")
_PHONE_KEYWORD = re.compile(r"(?:tel|phone|mobile|v|vx|wx|qq)$")
_ORDER_CONTEXT = re.compile(
    r"(?:订单|单号|编号|流水|快递|运单|工单|批次|序列号|货号|型号|券码|卡号|身份证|发票|order|no\.?|sn|#)"
    r"[\s:：#=号是为]{0,4}$"
)


def _spaced(word: str) -> str:
    """A keyword whose characters may be split by up to two separators (`Q Q`, `q.q`, `微 信`, `扣-扣`)."""
    return f"{SEP}{{0,2}}".join(re.escape(c) for c in word)


def _after_no_word(keywords: str) -> str:
    """`(?<![a-z0-9])(?:k1|k2|…)`, each keyword `_spaced`, written as `(?:k(?<![a-z0-9]k)…|…)`: the same
    matches, but every alternative starts with a literal, so the regex engine only stops where a keyword
    starts."""
    words = keywords.removeprefix("(?:").removesuffix(")").split("|")
    gap = f"{SEP}{{0,2}}"
    return (
        "(?:"
        + "|".join(f"{w[0]}(?<![a-z0-9]{w[0]})" + "".join(gap + re.escape(c) for c in w[1:]) for w in words)
        + ")"
    )


def _hint_alternatives(keywords: str) -> list[str]:
    """Each keyword of `(?:k1|k2|…)`, `_spaced`: alternatives that start with a literal."""
    return [_spaced(w) for w in keywords.removeprefix("(?:").removesuffix(")").split("|")]


def _by_first(alternatives: list[str]) -> re.Pattern[str]:
    """One regex of `alternatives` (each starting with one literal character, `re.escape`d or not) written
    as one branch per first character: `a(?:x|y)|b(?:z)`. The same matches; where a first character occurs
    in the text the regex engine tries one branch instead of every alternative (`_ANY_HINT` over the seed
    messages: 3.6 -> 2.8 us per message)."""
    groups: dict[str, list[str]] = {}
    for alt in alternatives:
        if not alt or alt[0] in "[(.^$*+?{|)]":
            raise ValueError(f"a first look must start with a literal: {alt!r}")
        n = 2 if alt[0] == "\\" else 1
        groups.setdefault(alt[:n], []).append(alt[n:])
    return re.compile(
        "|".join(
            first + (rests[0] if len(rests) == 1 else f"(?:{'|'.join(rests)})")
            for first, rests in groups.items()
        )
    )


_WECHAT_KW = (
    r"(?:微信|weixin|wechat|vx|wx|v信|微x|威信|薇信|徽信|维信|卫信|加v|加微|加薇|v号|绿泡泡|wei信|vx号)"
)
_HEARTS = "❤♥♡❣💕💗💖💓💞💘💝💟🧡💛💚💙💜🖤🤍🤎"
# Keywords built with a symbol: +V, ➕V, ❤V, ➕微, ❤vx, V❤ (＋ folds to +; `ctrl+v` is no keyword).
_SYMBOL_KW = (
    r"(?:(?:\+(?<![a-z0-9]\+)|[➕" + _HEARTS + f"]){SEP}{{0,2}}(?:vx|wx|v(?![a-z])|微|薇|威)"
    r"|v(?<![a-z0-9]v)[" + _HEARTS + "])"
)
# Written letter first (v, 微 …), the symbol looked for behind it: every alternative starts with a literal,
# so the search jumps between those letters (symbols in front would make it try every position).
_SYMBOLS = "[+➕" + _HEARTS + "]"
_SYMBOL_HINTS = [f"{k}(?<={_SYMBOLS}{'.' * gap}{k})" for k in "v微薇威" for gap in range(3)] + [
    f"v[{_HEARTS}]"
]
_SYMBOL_HINT = _by_first(_SYMBOL_HINTS)
# Between a keyword and the id: an optional `id`, then up to eight characters that are no letter or digit and
# end no sentence — separators, a marker (号 : 是), a few words (微信同号：, 加微信哦～, vx 👉).
_FILL = f"(?P<fill>(?:{SEP}{{0,2}}id)?" + r"[^a-z0-9\n。！？!?]{0,8}?)"
_WECHAT_ID = r"(?P<id>[a-z][-_a-z0-9]{5,19}|1[3-9]\d{9})(?![-_a-z0-9])"
WECHAT = re.compile(_after_no_word(_WECHAT_KW) + _FILL + _WECHAT_ID)
# Run only where `_SYMBOL_HINT` finds a symbol-built keyword: its symbols in front would make the regex engine
# try every position of every text.
WECHAT_SYMBOL = re.compile(_SYMBOL_KW + _FILL + _WECHAT_ID)
# `(?<![a-z0-9_])wxid_…`, written letter first so that the regex engine jumps from w to w instead of trying
# the look-behind at every position (the same matches; 3.5 -> 0.5 us per seed message with a WeChat hint).
WXID = re.compile(r"w(?<![a-z0-9_]w)xid_[a-z0-9_-]{3,40}")
_QQ_KW = r"(?:qq|扣扣|抠抠|企鹅|q号|球球)"
QQ = re.compile(_after_no_word(_QQ_KW) + _FILL + r"(?P<num>[1-9](?:" + f"{SEP}{{0,2}}" + r"\d){4,11})")
# What the fill may say: an explicit marker makes any id an id (微信号：zhangsan); without one, at most two
# Chinese characters (微信同号 138…, QQ群 123…) and an id with a digit, `_` or `-`. Words of orders, payments
# and coupons make the number theirs (微信支付单号：wx2023…, 微信领券 code2023).
_FILL_MARKER = re.compile(r"id|[号:：=是为👉➡→]")
_FILL_NOT = re.compile(r"订单|单号|编号|流水|交易|支付|商户|账单|券|兑换|激活|密码|验证码|口令|红包|价|金额")
_FILL_WORDS = 2

_DOT = r"(?:\.|。|点|\(\.\)|\[\.\]|\(dot\)|\[dot\])"
_TLD = (
    r"(?:com|cn|net|org|cc|top|xyz|vip|info|me|io|co|shop|club|site|online|link|ly|tv|icu|wang|ink|ren|"
    r"fun|live|store|tech|biz|pro|asia|hk|tw|mobi|work|life|tk|ml|ga|gq|cf|gov|edu|int)"
)
# After the scheme, a URL is ASCII (full-width letters are ASCII after folding): the first Chinese character,
# space or quote ends it, and it does not end on sentence punctuation. Full-width punctuation in the
# original also ends it although it folds to ASCII (，→ ,): see `_cut_urls`.
_URL_TAIL = r"[-a-z0-9._~:/?#\[\]@!$&()*+,;=%^`{|}\\]*"
URL = re.compile(
    r"(?:(?:https?|ftp)://" + _URL_TAIL + r"[-a-z0-9_~/#\[\]@$&(*+=%^`{|}\\]"
    r"|(?<![a-z0-9@._-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?" + _DOT + r")+" + _TLD + r"(?![a-z0-9-])"
    r"(?::\d{2,5})?(?:/[-a-z0-9._~%/?#=&+]*)?)"
)
EMAIL = re.compile(
    r"(?<![a-z0-9._%+-])[a-z0-9][a-z0-9._%+-]*(?:@|\(at\)|\[at\]|艾特)"
    r"[a-z0-9-]+(?:" + _DOT + r"[a-z0-9-]+)*" + _DOT + r"[a-z]{2,10}(?![a-z0-9-])"
)


@dataclass(frozen=True, slots=True)
class Detection:
    """A contact detail: detector name and original [start, end)."""

    kind: str
    start: int
    end: int


# Letters written for digits inside a phone-shaped run (138O0138OOO, l3800138000): o for 0, l and i for 1
# (Ⅰ folds to i). Only a run that starts with 1 / l / i, stands apart from other letters and digits and
# keeps four real digits.
_LETTERED = re.compile(f"(?<![a-z0-9])[1li](?:{GAP}[0-9oli])+(?![a-z0-9])")
# (`{0,3}+`: possessive, the same matches because a separator is never a digit, but no backtracking over
# the separators at every digit of the text: with the phone first look, 2.84 -> 2.49 us per seed message.)
_LETTERED_HINTS = [f"{c}(?:[^0-9a-z]{{0,3}}+[0-9oli]){{10}}" for c in "1li"]
_LETTERED_HINT = re.compile("|".join(_LETTERED_HINTS))
_AS_DIGITS = str.maketrans("oli", "011")
_MIN_REAL_DIGITS = 4


def _phone_digits(digits: str) -> str | None:
    """The 11 digits of a mainland mobile number (after +86 / 0086), or None."""
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    elif len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    if len(digits) != 11 or digits[0] != "1" or digits[1] not in "3456789":
        return None
    return digits


def _lettered_phones(text: str) -> Iterable[tuple[int, int]]:
    for m in _LETTERED.finditer(text):
        run = _NOT_DIGIT_OR_LETTER.sub("", m.group())
        if run.isdigit() or sum(c.isdigit() for c in run) < _MIN_REAL_DIGITS:
            continue  # no letter (the digit clusters have it) or mostly letters (words, not a number)
        if _phone_digits(run.translate(_AS_DIGITS)) is None:
            continue
        start, end = m.span()
        if not _ORDER_CONTEXT.search(text, max(0, start - 12), start):
            yield start, end


def _phones(text: str) -> Iterable[tuple[int, int]]:
    # A cluster is a run of digits joined by at most three separators; a phone is a whole cluster of
    # exactly 11 digits (or 86 + 11), so longer numbers (orders, ID cards, timestamps) never yield one.
    for m in _DIGIT_CLUSTER.finditer(text):
        if _phone_digits(_NOT_DIGIT.sub("", m.group())) is None:
            continue
        start, end = m.start(), m.end()
        if start > 0 and text[start - 1] == "+":
            start -= 1
        before = text[start - 1] if start > 0 else ""
        glued = before.isascii() and before.isalpha()
        # Glued to letters it is part of a longer token such as an SKU code (ab13812345678), unless the
        # letters are a contact keyword (tel13812345678, vx13812345678).
        if glued and not _PHONE_KEYWORD.search(text, max(0, start - 6), start):
            continue
        if _ORDER_CONTEXT.search(text, max(0, start - 12), start):
            continue
        yield start, end
    # Grouped exactly like a phone number (3-4-4), any punctuation may separate the groups: 138，1234，5678.
    for m in _PHONE_344.finditer(text):
        start, end = m.span()
        if _GROUP_AFTER.match(text, end) or _GROUP_BEFORE.search(text[max(0, start - 4) : start]):
            continue  # part of a longer list of numbers
        if not _ORDER_CONTEXT.search(text, max(0, start - 12), start):
            yield start, end
    if _LETTERED_HINT.search(text) is not None:
        yield from _lettered_phones(text)


def _fill_ok(fill: str, *, letters_only: bool) -> bool:
    """May `fill` stand between a keyword and an id (see `_FILL_MARKER`)?"""
    if not fill:
        return not letters_only
    if _FILL_NOT.search(fill):
        return False
    if _FILL_MARKER.search(fill):
        return True
    return not letters_only and sum(is_cjk(c) for c in fill) <= _FILL_WORDS


def _wechat(text: str) -> Iterable[tuple[int, int]]:
    found = list(WECHAT.finditer(text))
    if _SYMBOL_HINT.search(text) is not None:
        found.extend(WECHAT_SYMBOL.finditer(text))
    for m in found:
        ident = m.group("id")
        letters_only = not any(c.isdigit() or c in "_-" for c in ident)
        if _fill_ok(m.group("fill"), letters_only=letters_only):
            yield m.start(), m.end()
    for m in WXID.finditer(text):
        yield m.start(), m.end()


def _qq(text: str) -> Iterable[tuple[int, int]]:
    for m in QQ.finditer(text):
        end = m.end()
        if _DIGIT_AFTER.match(text[end : end + 3]) or not _fill_ok(m.group("fill"), letters_only=False):
            continue
        yield m.start(), end


def _urls(text: str) -> Iterable[tuple[int, int]]:
    for m in URL.finditer(text):
        yield m.start(), m.end()


def _emails(text: str) -> Iterable[tuple[int, int]]:
    for m in EMAIL.finditer(text):
        yield m.start(), m.end()


# Cheap first looks: most texts skip every detector regex. (An alternation of literals lets the regex
# engine skip positions whose character starts none of them, so one search beats many `in` tests.)
_WECHAT_HINTS = _hint_alternatives(_WECHAT_KW) + _SYMBOL_HINTS
_WECHAT_HINT = _by_first(_WECHAT_HINTS)
_QQ_HINTS = _hint_alternatives(_QQ_KW)
_QQ_HINT = _by_first(_QQ_HINTS)
_EMAIL_HINTS = ["@", r"\(at\)", r"\[at\]", "艾特"]
_EMAIL_HINT = _by_first(_EMAIL_HINTS)
# `[a-z0-9]` + a dot + two letters, written dot first: every alternative starts with a literal, so the regex
# engine jumps from dot to dot instead of trying every letter and digit of the text.
_DOMAIN_HINTS = [
    re.escape(dot) + f"(?<=[a-z0-9]{re.escape(dot)})[a-z]{{2}}"
    for dot in (".", "。", "点", "(.)", "[.]", "(dot)", "[dot]")
]
_DOMAIN_HINT = _by_first(_DOMAIN_HINTS)
# Every phone the detector accepts has 11 digits with at most three non-digits between two of them (a
# cluster joins digits by at most three separators, a 3-4-4 group by at most three punctuation marks),
# spelt out per first digit. (The DETECT folding leaves no digit but ASCII ones: `\d` is [0-9] there.) With
# the lettered phones' first look, one search (on a seed message that passes `_ANY_HINT`: 3.7 -> 1.7 us).
_PHONE_HINTS = [f"{d}(?:\\D{{0,3}}+\\d){{10}}" for d in "0123456789"] + _LETTERED_HINTS
_PHONE_HINT = _by_first(_PHONE_HINTS)
# One search that fails for a text where neither the WeChat, QQ nor e-mail hint nor a URL scheme occurs
# (every alternative starts with a literal: the engine only stops at their first characters).
_WORD_HINTS = _WECHAT_HINTS + _QQ_HINTS + _EMAIL_HINTS + ["://"]
_WORD_HINT = _by_first(_WORD_HINTS)
# All first looks in one search: most texts are done after it.
_ANY_HINT = _by_first(_PHONE_HINTS + _WORD_HINTS + _DOMAIN_HINTS)


def _worth(kind: str, text: str, at: int = 0) -> bool:
    """Can the detector find anything at all in this (DETECT-folded) text? `at`: no first look matches
    before it."""
    if kind == "phone":
        return _PHONE_HINT.search(text, at) is not None
    if kind == "wechat":
        return _WECHAT_HINT.search(text, at) is not None
    if kind == "qq":
        return _QQ_HINT.search(text, at) is not None
    if kind == "email":
        return _EMAIL_HINT.search(text, at) is not None
    return "://" in text or _DOMAIN_HINT.search(text, at) is not None


DETECTOR_FUNCS = {"phone": _phones, "wechat": _wechat, "qq": _qq, "url": _urls, "email": _emails}
# Preference when two detections start at the same place and have the same length.
_RANK = {"email": 0, "wechat": 1, "qq": 2, "phone": 3, "url": 4}


# Punctuation of Chinese prose: in the original text it ends a URL, even where its folding is ASCII.
_PROSE_STOPS = frozenset("，。、；！（）【】「」『』《》“”‘’…")
_URL_TRAILING = ".,;:!?)'"


def _cut_urls(found: list[tuple[int, int, str]], text: str, view: DetectView) -> list[tuple[int, int, str]]:
    """URLs cut at the first prose punctuation of the ORIGINAL text (`http://a.cn/x.html，注意` ends before
    the comma) and then at trailing sentence punctuation; other detections as they are."""
    out: list[tuple[int, int, str]] = []
    src, folded = view.src, view.text
    for s, e, kind in found:
        if kind == "url":
            for i in range(s, e):
                if text[src[i]] in _PROSE_STOPS:
                    e = i
                    break
            while e > s and folded[e - 1] in _URL_TRAILING:
                e -= 1
            if e <= s or folded[s:e].endswith("://"):
                continue
        out.append((s, e, kind))
    return out


def may_detect(folded: str) -> bool:
    """False when `detect` finds nothing in a text whose DETECT folding is `folded` (no detector's first look
    matches); True says only that it might."""
    return _ANY_HINT.search(folded) is not None


def detect(
    text: str, kinds: Iterable[str] = tuple(DETECTOR_FUNCS), folded: str | None = None
) -> list[Detection]:
    """Contact details in `text`, leftmost-longest, spans in the original text. `folded`: the caller's
    `detect_text(text)`, when it has it already."""
    if not text:
        return []
    if folded is None:
        folded = detect_text(text)
    hint = _ANY_HINT.search(folded)
    if hint is None:
        return []
    # Every first look below is part of `_ANY_HINT`, so none matches before the place it found: they search
    # from there (on the seed messages that get this far, 45 % of the text lies before it; `detect`
    # 11.8 -> 8.8-10.4 us per seed message).
    at = hint.start()
    found: list[tuple[int, int, str]] = []
    # Only the phone and URL detectors can match a text without any of the word hints.
    words = _WORD_HINT.search(folded, at) is not None
    for kind in kinds:
        if kind == "phone":
            worth = _worth(kind, folded, at)
        elif kind == "url" and not words:
            worth = _DOMAIN_HINT.search(folded, at) is not None  # "://" is one of the word hints
        else:
            worth = words and _worth(kind, folded, at)
        if worth:
            found.extend((s, e, kind) for s, e in DETECTOR_FUNCS[kind](folded))
    if not found:
        return []
    view: DetectView = detect_view(text)
    if "url" in kinds:
        found = _cut_urls(found, text, view)
    chosen: list[Detection] = []
    last_end = -1
    for s, e, kind in sorted(found, key=lambda f: (f[0], f[0] - f[1], _RANK[f[2]])):
        if s >= last_end:
            o_start, o_end = view.span(s, e)
            chosen.append(Detection(kind, o_start, o_end))
            last_end = e
    return chosen
