"""Text and markup safety: what may reach an XML feed and the reader that renders it.

Records are untrusted. Everything we publish is rendered by other people's feed
readers, some of which treat even RSS titles as HTML, so:

- plain-text fields (titles, names, topics) lose every tag, even entity-encoded ones;
- excerpts keep a small allow-list of HTML (nh3), or are reduced to text;
- every string loses the characters XML 1.0 forbids and is normalised to NFC.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from collections.abc import Callable

# XML 1.0 Char excludes C0 controls (but tab, LF, CR), surrogates and U+FFFE/U+FFFF.
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SPACES = re.compile(r"\s+")
# Unicode format controls (category Cf) that have no place in a title or a name: bidi
# overrides and isolates (which make "Safe \u202egnp.exe" read as "Safe exe.png"),
# zero-width spaces, BOMs, soft hyphens, interlinear annotations. Kept: ZWNJ/ZWJ
# (Persian, Indic scripts, emoji sequences), the tag characters of subdivision flags
# and the Arabic number signs, which are part of the text they mark.
_FORMAT_CONTROLS = re.compile(
    "[\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufeff\ufff9-\ufffb\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001]"
)
_TAG_LIKE = re.compile(r"<[A-Za-z!/?]")
_HTML_SPECIAL = re.compile("[<>&]")  # what a sanitiser would parse or escape in ASCII text
_BLOCK_TAG = re.compile(r"<(?:p|ul|ol|li|blockquote)\b")
# Tags that separate words when markup becomes text: "<p>a</p><p>b</p>" is "a b".
_WORD_BREAK = re.compile(
    r"<(?=/?(?:address|article|aside|blockquote|br|dd|div|dl|dt|figcaption|figure|footer|"
    r"h[1-6]|header|hr|img|li|main|nav|ol|p|pre|section|table|td|th|tr|ul)\b)",
    re.IGNORECASE,
)
_PLAIN_ROUNDS = 4  # markup hidden under this many layers of entities is still removed

EXCERPT_MODES = ("sanitize", "text")
ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "cite", "code", "del", "em", "i", "img",
        "ins", "kbd", "li", "mark", "ol", "p", "q", "s", "small", "span", "strong", "sub",
        "sup", "u", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
}
URL_ATTRIBUTES = frozenset({"href", "src"})
URL_SCHEMES = frozenset({"http", "https"})
ELLIPSIS = "…"


def xml_safe(text: str) -> str:
    """Remove the characters XML 1.0 cannot hold; everything else (emoji, RTL, CJK) stays."""
    return XML_FORBIDDEN.sub("", text)


def plain_text(text: str) -> str:
    """Plain text from text that may hold markup or entities: tags removed, entities decoded.

    Decoding can reveal new markup (`&lt;script&gt;`); it is removed too, because some
    readers render titles as HTML. Also XML-safe, NFC, whitespace folded.
    """
    if text.isascii() and text.isprintable() and "<" not in text and "&" not in text:
        return " ".join(text.split())  # the common case: nothing to remove or normalise
    return plain_text_full(text)


def plain_text_full(text: str) -> str:
    """`plain_text` without its shortcut for plain ASCII (kept apart so tests can show
    the shortcut gives the same result)."""
    text = _FORMAT_CONTROLS.sub("", xml_safe(text))
    for _ in range(_PLAIN_ROUNDS):
        if "<" not in text and "&" not in text:
            break
        decoded = _FORMAT_CONTROLS.sub("", xml_safe(html.unescape(_strip_tags(text))))
        if decoded == text:
            break
        text = decoded
    if _TAG_LIKE.search(text):
        text = text.replace("<", "")  # still markup after every round: give up on '<'
    text = _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()
    # Nothing but joiners left (ZWJ, ZWNJ, tag characters): nothing visible at all.
    return "" if all(unicodedata.category(ch) == "Cf" for ch in text) else text


def _strip_tags(text: str) -> str:
    """Every tag removed (script and style with their content); text stays escaped."""
    import nh3  # only for text that holds markup: plain text never loads it

    return nh3.clean(_WORD_BREAK.sub(" <", text), tags=set())


@functools.lru_cache(maxsize=8192)  # a story's excerpt is shown in several feeds and pages
def html_to_text(fragment: str) -> str:
    """The text of a (sanitised) HTML fragment: one round of tag removal and decoding."""
    text = html.unescape(_strip_tags(fragment))
    return _SPACES.sub(" ", xml_safe(text)).strip()


def sanitize_html(fragment: str, resolve_url: Callable[[str], str | None] | None = None) -> str:
    """An allow-listed HTML fragment: no script, style, iframe, event handler or unsafe URL.

    `resolve_url` turns an href/src into an absolute http(s) URL, or None to drop it.
    """
    if fragment.isascii() and fragment.isprintable() and not _HTML_SPECIAL.search(fragment):
        return " ".join(fragment.split())  # the common case: no markup, nothing to escape
    return sanitize_html_full(fragment, resolve_url)


def sanitize_html_full(
    fragment: str, resolve_url: Callable[[str], str | None] | None = None
) -> str:
    """`sanitize_html` without its shortcut for plain ASCII text (kept apart so tests can
    show the shortcut gives the same result).

    Normalisation to NFC happens BEFORE sanitising: composing afterwards could merge a
    tag's `>` with a following combining character and reopen the tag.
    """
    text = unicodedata.normalize("NFC", xml_safe(fragment))

    def filter_attribute(tag: str, name: str, value: str) -> str | None:
        if name not in URL_ATTRIBUTES:
            return value
        return None if resolve_url is None else resolve_url(value)

    import nh3  # loaded by the first excerpt that needs it

    clean = nh3.clean(
        text,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        attribute_filter=filter_attribute,
        strip_comments=True,
        link_rel="noopener noreferrer",
    )
    return _SPACES.sub(" ", xml_safe(clean)).strip()


def text_as_html(text: str) -> str:
    """Plain text as an HTML fragment (the excerpt in "text" mode)."""
    return html.escape(text, quote=False)


def excerpt_html(
    raw: str, mode: str, resolve_url: Callable[[str], str | None] | None = None
) -> str:
    """The excerpt as a safe HTML fragment: sanitised markup, or escaped plain text."""
    if mode == "text":
        return text_as_html(plain_text(raw))
    return sanitize_html(raw, resolve_url)


def holds_blocks(fragment: str) -> bool:
    """True when a sanitised fragment holds block elements (which a <p> cannot hold)."""
    return _BLOCK_TAG.search(fragment) is not None


def holds_markup(fragment: str) -> bool:
    """True when an HTML fragment is not also valid plain text (has tags or entities)."""
    return "<" in fragment or "&" in fragment


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary where one is near, with '…'."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    space = cut.rfind(" ")
    if space >= limit * 3 // 4:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS
