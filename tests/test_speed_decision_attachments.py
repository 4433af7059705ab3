"""The attachment policy's shortcuts (issue 13) answer what the long way answers: the host of a link read by
one regex for the plain URL shape (`_host`) against `urlsplit` (`_host_parsed`), and the prepared host /
appid globs (`_Globs.match`) against the one regex of the whole list (`_matches`), on many inputs including
tricky ones."""

from __future__ import annotations

import string

from hypothesis import example, given, settings
from hypothesis import strategies as st

from rules.attachments import (
    _PLAIN_URL,
    AttachmentPolicy,
    _compiled,
    _Globs,
    _host,
    _host_parsed,
    _matches,
    _with_scheme,
    load_attachment_policy,
)

TRICKY_URLS = [
    "https://shop.example.com/new/1/2/3",
    "https://shop.example.com",
    "https://shop.example.com:8443/a?b#c",
    "https://shop.example.com:/a",
    "https://shop.example.com:abc/a",
    "https://shop.example.com:80:90/a",
    "HTTPS://Shop.Example.COM./A",
    "https://shop.example.com..",
    "https://./",
    "https://.",
    "https:///path",
    "https://",
    "://host/",
    "shop.example.com/new",
    "//shop.example.com/new",
    "/shop.example.com",
    "  https://shop.example.com/x  ",
    "\thttps://shop.example.com/x",
    "https://exa\tmple.com/",
    "https://example.com\t.evil.com/",
    "https://example.com\n.evil.com/",
    "https://exa\rmple.com/",
    "https:\t//example.com/",
    "ht\ttps://example.com/",
    "https://user:pass@evil.com/",
    "https://good.com@evil.com/",
    "https://evil.com\\@good.com/",
    "https://evil.com\\good.com/",
    "https://[::1]/",
    "https://[::1]:80/",
    "https://[::1/",
    "https://::1]/",
    "https://例子.中国/",
    "https://xn--fsqu00a.xn--fiqs8s/",
    "https://ｅｘａｍｐｌｅ.com/",
    "https://example。com/",
    "https://example.com／evil",
    "https://t.cn/abc",
    "https://T.CN/abc",
    "http://t.cn./abc",
    "https://a.t.cn?x",
    "https://a.t.cn#x",
    "https://my_host.example.com/",
    "https://-dash-.example.com/",
    "https://%74.cn/",
    "https://1.2.3.4/",
    "https://1.2.3.4:8080",
    "mailto:someone@example.com",
    "javascript:alert(1)",
    "weixin://dl/business/?t=abc",
    "a:b://host/",
    "1https://host/",
    "+x://host/",
    "h+t.t-p://host/",
    "https://host/pa th",
    "https://host?",
    "https://host#",
    "https://host/?q=http://other.com/",
    "\x00https://host/",
    "\x1fhttps://host/",
    "https://host\x00/",
    "https://ho\x0bst/",
    "::not a url::",
    "https://ſ.example.com/",
    "https://K.example.com/",
]

URL_ALPHABET = (
    string.ascii_letters + string.digits + ":/?#@[]\\.%-_+ \t\r\n\x00\x0b\x1f~!$&'()*,;=" + "ſKé例。／：＠"
)
HOST_ALPHABET = string.ascii_letters + string.digits + ".-_" + ":@[]\\%\t\n é。"


def long_way(url: str) -> tuple[str | None, str]:
    return _host_parsed(_with_scheme(url))


def test_host_of_tricky_urls_equals_urlsplit() -> None:
    for url in TRICKY_URLS:
        assert _host(url) == long_way(url), repr(url)


def test_the_plain_shape_takes_the_shortcut() -> None:
    for url in (
        "https://shop.example.com/new/1/2/3",
        "http://t.cn",
        "shop.example.com/x",
        "https://a.b:8080?q",
    ):
        assert _PLAIN_URL(_with_scheme(url)) is not None, url
    for url in ("https://user@host/", "https://[::1]/", "https://例子.中国/", "https://exa\tmple.com/"):
        assert _PLAIN_URL(_with_scheme(url)) is None, url


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=URL_ALPHABET, max_size=40))
@example("https://a.b")
def test_host_of_any_text_equals_urlsplit(url: str) -> None:
    assert _host(url) == long_way(url)


@settings(max_examples=3000, deadline=None)
@given(
    scheme=st.sampled_from(["https", "http", "HTTP", "weixin", "h+t.t-p", "1x", "", " https", "ht\ttps"]),
    separator=st.sampled_from(["://", ":/", ":", "//", ":\t//", "://\n"]),
    user=st.sampled_from(["", "u@", "u:p@", "@"]),
    host=st.text(alphabet=HOST_ALPHABET, max_size=20),
    port=st.sampled_from(["", ":", ":80", ":8x", ":80:90", ":\t1"]),
    rest=st.sampled_from(["", "/", "/a/b?c=d#e", "?q", "#f", "\\x", "\t/", " /", "/\n"]),
)
def test_host_of_url_shaped_text_equals_urlsplit(
    scheme: str, separator: str, user: str, host: str, port: str, rest: str
) -> None:
    url = f"{scheme}{separator}{user}{host}{port}{rest}"
    assert _host(url) == long_way(url)


SHIPPED = load_attachment_policy(None)
HOSTS = [
    "t.cn", "a.t.cn", "at.cn", "t.cn.evil.com", "x.y.t.cn", ".t.cn", "t.cn.", "", ".", "..", "T.CN",
    "shop.example.com", "v.douyin.com", "douyin.com", "xdouyin.com", "qm.qq.com", "qq.com", "a\nb.t.cn",
    "a\n.t.cn", "t.cn\n", "例子.t.cn", "jd.com", "jd.com.cn", "bit.ly", "bitly", "wx123", "wxbad",
]  # fmt: skip
PATTERN_LISTS = [
    SHIPPED.link_deny,
    SHIPPED.link_allow,
    (),
    ("*",),
    ("*.t.cn", "t.cn"),
    ("*.example.com", "shop.*", "wx?23", "[a-c]*.cn"),
    ("example.com", "*"),
    ("", "cn"),
    ("T.CN", "Jd.Com"),
    ("a\nb.t.cn",),
    ("**",),
]


def test_prepared_globs_equal_the_regex_on_listed_hosts() -> None:
    for patterns in PATTERN_LISTS:
        globs = _Globs(patterns)
        for host in HOSTS:
            assert globs.match(host) == _matches(host, patterns), (patterns, host)


GLOB_ALPHABET = "abct.*?[]!-\n" + "Aé"


@settings(max_examples=3000, deadline=None)
@given(
    patterns=st.lists(st.text(alphabet=GLOB_ALPHABET, max_size=6), max_size=5).map(tuple),
    value=st.text(alphabet=GLOB_ALPHABET, max_size=10),
)
@example(patterns=("t.c",), value="a\nt.c")
@example(patterns=("a*",), value="a\nb")
def test_prepared_globs_equal_the_regex(patterns: tuple[str, ...], value: str) -> None:
    assert _Globs(patterns).match(value) == _matches(value, patterns)


def test_a_policy_uses_its_prepared_lists() -> None:
    policy = AttachmentPolicy(link_deny=("*.t.cn", "t.cn"), miniprogram_allow=("wx1*",))
    assert policy._link_deny is _compiled(("*.t.cn", "t.cn"))
    assert policy.check("link", "w", url="https://a.t.cn/x") is not None
    assert policy.check("link", "w", url="https://shop.example.com/x") is None
    assert policy.check("miniprogram", "w", appid="wx123") is None
    assert policy.check("miniprogram", "w", appid="wz123") is not None
    assert policy.kind_allowed("card") is True and policy.kind_allowed("unknown") is False
    assert policy == AttachmentPolicy(link_deny=("*.t.cn", "t.cn"), miniprogram_allow=("wx1*",))
