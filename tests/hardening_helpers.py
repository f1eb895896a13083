"""Helpers for the hardening tests: read feeds back strictly and look for anything unsafe."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import feedparser
import lxml.etree
import lxml.html

from . import factories

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
MEDIA = "{http://search.yahoo.com/mrss/}content"
UNSAFE_ELEMENTS = frozenset(
    {"script", "style", "iframe", "frame", "object", "embed", "form", "base", "meta", "link",
     "svg", "math", "applet", "input", "button", "textarea"}
)  # fmt: skip


def write_config(folder: Path, records: Path, extra: str = "") -> Path:
    return factories.write_config(folder, [str(records)], extra)


def record_json(index: int, **fields: object) -> str:
    """A valid record as JSON text; `fields` override or add keys."""
    data: dict[str, object] = {
        "title": f"Story number {index}",
        "webUrl": f"https://news.example.com/story/{index}",
        "publishedDateTime": f"2026-01-{1 + index % 28:02d}T{index % 24:02d}:00:00Z",
        "topics": [f"Topic {index % 7}"],
        "excerpt": f"Excerpt of story {index}.",
        "provider": {"name": f"Provider {index % 11}", "domain": f"p{index % 11}.example.com"},
    }
    data.update(fields)
    return json.dumps(data)


def is_safe_url(value: str) -> bool:
    return value.startswith(("https://", "http://")) and not any(
        ch.isspace() or ch in "<>\"'`" for ch in value
    )


def html_problems(fragment: str) -> list[str]:
    """What is unsafe in an HTML fragment: forbidden elements, handlers, bad URLs."""
    if not fragment.strip():
        return []
    problems = []
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # comments and processing instructions carry no behaviour
        if element.tag.lower() in UNSAFE_ELEMENTS:
            problems.append(f"<{element.tag}> element")
        for name, value in element.attrib.items():
            if name.lower().startswith("on") or name.lower() in ("style", "srcdoc", "formaction"):
                problems.append(f"{name} attribute on <{element.tag}>")
            is_url = name.lower() in ("href", "src", "cite", "action", "poster", "background")
            if is_url and not is_safe_url(value):
                problems.append(f"{name}={value!r} on <{element.tag}>")
    return problems


def _html_values(root: lxml.etree._Element) -> Iterator[tuple[str, str]]:
    """(where, HTML text) for every element that carries HTML in RSS or Atom."""
    for element in root.iter("description", CONTENT, f"{ATOM}summary", f"{ATOM}content"):
        is_atom = element.tag.startswith(ATOM)
        if is_atom and element.get("type", "text") != "html":
            continue
        yield element.tag, element.text or ""


def _urls(root: lxml.etree._Element) -> Iterator[tuple[str, str]]:
    for element in root.iter("link", "guid", "comments", f"{ATOM}id", f"{ATOM}uri"):
        if element.text and element.text.strip() and "link" in str(element.tag):
            yield str(element.tag), element.text.strip()
    for element in root.iter(f"{ATOM}link", MEDIA, "enclosure"):
        for attribute in ("href", "url"):
            if element.get(attribute) is not None:
                yield f"{element.tag}@{attribute}", element.get(attribute)


def feed_problems(data: bytes) -> list[str]:
    """Everything wrong with one feed document; [] means well-formed, bozo-free and safe."""
    problems: list[str] = []
    try:
        root = lxml.etree.fromstring(data, parser=lxml.etree.XMLParser(resolve_entities=False))
    except lxml.etree.XMLSyntaxError as exc:
        return [f"not well-formed XML: {exc}"]
    parsed = feedparser.parse(data)
    if parsed.bozo:
        problems.append(f"feedparser bozo: {parsed.bozo_exception!r}")
    for where, fragment in _html_values(root):
        problems.extend(f"{where}: {p}" for p in html_problems(fragment))
    for where, url in _urls(root):
        if not is_safe_url(url):
            problems.append(f"{where}: unsafe link {url!r}")
    for element in root.iter("title", f"{ATOM}title", "category", f"{ATOM}name"):
        text = element.text or element.get("term") or ""
        if "<" in text and html_problems(text):
            problems.append(f"{element.tag}: markup in plain text {text!r}")
    for element in root.iter(f"{ATOM}category"):
        term = element.get("term") or ""
        if "<" in term and html_problems(term):
            problems.append(f"category term with markup {term!r}")
    return problems


def feed_files(output: Path) -> list[Path]:
    return sorted(p for p in output.rglob("*.xml") if p.is_file())


def all_feed_problems(output: Path) -> dict[str, list[str]]:
    found = {}
    for path in feed_files(output):
        problems = feed_problems(path.read_bytes())
        if problems:
            found[str(path.relative_to(output))] = problems
    return found


# --- killing real builds ---------------------------------------------------------------

TEMP_SUFFIX = ".aggregator-tmp"


def write_record_set(folder: Path, count: int, topics: int, suffix: str = "") -> None:
    """`count` one-record files over `topics` topics; `suffix` changes every title."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        text = record_json(
            index,
            title=f"Story number {index}{suffix}",
            topics=[f"Topic {index % topics}", f"Group {index % 13}"],
        )
        (folder / f"{index:05d}.json").write_text(text, encoding="utf-8")


def read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file under `root`, by relative path."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def classify_after_kill(
    output: Path, old: dict[str, bytes], new: dict[str, bytes]
) -> tuple[str, list[str], list[str]]:
    """Check every file left by a killed build: (phase, temp files left, broken files).

    A feed file is fine when it holds exactly the old or the new bytes (and so parses).
    `phase` says where the kill landed: "before" (all old), "during" (a mix) or
    "after" (all new).
    """
    temps: list[str] = []
    broken: list[str] = []
    olds = news = 0
    current = read_tree(output)
    for name, data in current.items():
        if Path(name).name.endswith(TEMP_SUFFIX):
            temps.append(name)
            continue
        if name.endswith(".xml"):
            try:
                lxml.etree.fromstring(data)
            except lxml.etree.XMLSyntaxError as exc:
                broken.append(f"{name}: not XML ({exc})")
                continue
        if data == new.get(name):
            news += 1
        elif data == old.get(name):
            olds += 1
        else:
            broken.append(f"{name}: neither the old nor the new bytes")
    missing = sorted(set(old) - set(current))
    broken.extend(f"{name}: missing" for name in missing)
    phase = "before" if news == 0 else "after" if olds == 0 and news == len(new) else "during"
    return phase, temps, broken
