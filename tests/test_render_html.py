"""The HTML pages: static checks with lxml, and a real headless Chromium (Selenium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import lxml.html
import pytest
from lxml import etree
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.config import Config, load_config
from aggregator.pipeline import build
from aggregator.serve import PreviewServer

from .conftest import preview
from .factories import EXAMPLES, png_bytes, png_pixels, write_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HAVE_CHROMIUM = Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()
needs_chromium = pytest.mark.skipif(not HAVE_CHROMIUM, reason="Debian chromium is not installed")
FEED_FILES = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json"}
# Set to a path (e.g. docs/screenshot.png) to refresh the README's screenshot.
SCREENSHOT_ENV = "AGGREGATOR_SCREENSHOT"
TITLE = "Aggregator Example News"

HOSTILE = """---
title: "<script>alert('title')</script> Chips & \\"Dips\\" <3"
webUrl: "https://evil.example/story?a=1&b=2"
publishedDateTime: 2026-11-20T08:00:00Z
excerpt: "<img src=x onerror=alert(1)> Fish &amp; chips & <b>more</b>"
topics: ["R&D <3 Labs"]
provider:
  name: "Evil <b>Corp</b>"
  domain: evil.example
---
"""


@pytest.fixture(scope="module")
def images() -> Iterator[HTTPServer]:
    """The publishers' image host, on 127.0.0.1: real PNGs, so the page loads cleanly."""
    server = HTTPServer(host="127.0.0.1", port=0)

    def picture(request: Request) -> Response:
        seed = sum(request.path.encode()) * 31
        return Response(png_bytes(320, 180, seed), mimetype="image/png")

    server.expect_request(re.compile(r"^/img/.*")).respond_with_handler(picture)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, images: HTTPServer) -> Config:
    """The bundled examples (images moved to the local host) plus one hostile record."""
    folder = tmp_path_factory.mktemp("site")
    records = folder / "records"
    shutil.copytree(EXAMPLES, records)
    host = f"http://127.0.0.1:{images.port}/img/"
    for path in (p for p in records.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8")
        path.write_text(re.sub(r"https://images\.([^/\"]+)/", host + r"\1/", text), "utf-8")
    (records / "hostile.md").write_text(HOSTILE, encoding="utf-8")
    config = load_config(write_config(folder, [records], title=TITLE))
    build(config)
    return config


def page(config: Config, relative: str) -> lxml.html.HtmlElement:
    return lxml.html.fromstring((config.site.output_dir / relative).read_bytes())


def all_pages(config: Config) -> list[str]:
    output = config.site.output_dir
    return sorted(p.relative_to(output).as_posix() for p in output.rglob("index.html"))


# --- static checks --------------------------------------------------------------------


def test_a_page_for_every_topic(site: Config) -> None:
    output = site.site.output_dir
    topics = {p.parent.name for p in (output / "topics").glob("*/rss.xml")}
    assert topics == {p.parent.name for p in (output / "topics").glob("*/index.html")}
    assert "r-d-3-labs" in topics


def test_values_are_escaped_not_executed(site: Config) -> None:
    for relative in ("index.html", "topics/r-d-3-labs/index.html"):
        raw = (site.site.output_dir / relative).read_bytes()
        assert b"<script" not in raw
        assert b"<img src=x" not in raw
        assert b"<b>" not in raw
        tree = page(site, relative)
        assert tree.xpath("//script") == []
        headings = [h.text_content() for h in tree.xpath("//article//h3")]
        # Titles are plain text: tags are removed, the characters are kept and escaped.
        assert 'Chips & "Dips" <3' in headings
        assert "Evil Corp" in [s.text_content() for s in tree.xpath("//*[@class='provider']")]


def test_autodiscovery_links_point_at_existing_feeds(site: Config) -> None:
    output = site.site.output_dir
    kinds = {"application/rss+xml", "application/atom+xml", "application/feed+json"}
    for relative in all_pages(site):
        tree = page(site, relative)
        links = tree.xpath("//head/link[@rel='alternate']")
        assert kinds <= {link.get("type") for link in links}
        for link in [*links, *tree.xpath("//head/link[@rel='outline']")]:
            assert link.get("title")
            target = urljoin(relative, link.get("href"))
            assert (output / target).is_file(), f"{relative}: {link.get('href')}"
        own = {link.get("type"): link.get("href") for link in links[:3]}
        assert own == {
            "application/rss+xml": "rss.xml",
            "application/atom+xml": "atom.xml",
            "application/feed+json": "feed.json",
        }, "each page first announces its own feeds"


def test_pages_are_accessible_static_html(site: Config) -> None:
    for relative in all_pages(site):
        tree = page(site, relative)
        assert tree.get("lang") == "en"
        for landmark in ("header", "nav", "main", "footer"):
            assert len(tree.xpath(f"//body//{landmark}")) >= 1, f"{relative}: no <{landmark}>"
        assert len(tree.xpath("//h1")) == 1
        assert tree.xpath("//a[@class='skip']/@href") == ["#main"]
        assert tree.xpath("//main/@id") == ["main"]
        for image in tree.xpath("//img"):
            assert image.get("alt", "").strip(), f"{relative}: image without alt text"
            assert image.get("width") and image.get("height")
        for link in tree.xpath("//a[contains(@class, 'feed')]"):
            assert ":" in link.text_content(), "feed links say which feed they are"
        assert tree.xpath("//meta[@name='viewport']")


def test_dates_come_from_the_records(site: Config) -> None:
    tree = page(site, "topics/ai/index.html")
    feed = feedparser.parse((site.site.output_dir / "topics/ai/rss.xml").read_bytes())
    shown = [t.get("datetime") for t in tree.xpath("//article//time")]
    assert len(shown) == len(feed.entries)
    assert [t[:19] for t in shown] == [
        "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}".format(*e.published_parsed[:6])
        for e in feed.entries
    ]
    assert tree.xpath("//article//time")[0].text == "23 November 2026"


def count_text(element: lxml.html.HtmlElement) -> str:
    return " ".join(element.text_content().split())


SOLO = """---
title: "The only story about this"
webUrl: "https://solo.example/story"
publishedDateTime: 2026-11-20T08:00:00Z
topics: ["Solo"]
---
"""


def test_story_counts_say_what_a_subscriber_gets(tmp_path: Path) -> None:
    """A topic with more stories than its feed holds says both numbers; the numbers are
    those of the feed a reader subscribes to."""
    records = tmp_path / "records"
    shutil.copytree(EXAMPLES, records)
    (records / "solo.md").write_text(SOLO, encoding="utf-8")
    config_path = write_config(tmp_path, [records])
    with config_path.open("a", encoding="utf-8") as out:
        out.write("\n[feeds]\nmax_items = 8\n")  # feeds hold fewer than some topics have
    site = load_config(config_path)
    build(site)
    output = site.site.output_dir
    index = page(site, "index.html")
    both = 0
    for card in index.xpath("//li[@class='topic']"):
        slug = card.get("data-topic")
        held = len(feedparser.parse((output / "topics" / slug / "rss.xml").read_bytes()).entries)
        topic_page = page(site, f"topics/{slug}/index.html")
        assert len(topic_page.xpath("//article")) == held  # the page lists the feed's items
        text = count_text(card.xpath(".//span[@class='count']")[0])
        match = re.fullmatch(r"(?:(\d+) of )?(\d+) stor(y|ies)(?: in its feed)?", text)
        assert match, text
        shown, stories, ending = match.groups()
        assert int(shown or stories) == held
        assert (ending == "y") == (stories == "1"), text
        assert (shown is None) == (text == f"{stories} {'story' if stories == '1' else 'stories'}")
        subscribe = count_text(topic_page.xpath("//section[@id='subscribe']/p")[0])
        footer = count_text(topic_page.xpath("//footer//p")[0])
        if shown is None:
            assert subscribe.endswith(f" {text} so far.")
            assert footer.startswith(f"{text}, ranked by")
        else:
            both += 1
            assert int(shown) < int(stories)
            top = f"the top {shown} of {stories} stories"
            assert subscribe.endswith(f"The feed holds {top} so far.")
            assert footer.startswith(f"The top {shown} of {stories} stories, ranked by")
    assert both >= 1, "the example site has a topic whose feed is capped"
    assert "1 story so far." in count_text(page(site, "topics/solo/index.html"))
    main = feedparser.parse((output / "rss.xml").read_bytes()).entries
    assert count_text(index.xpath("//footer//p")[0]).startswith(f"The top {len(main)} of ")


def test_pages_are_byte_identical_across_builds(site: Config, tmp_path: Path) -> None:
    again = build(site, tmp_path / "again")
    assert again.written == again.files
    for relative in all_pages(site):
        assert (tmp_path / "again" / relative).read_bytes() == (
            site.site.output_dir / relative
        ).read_bytes()
    assert build(site).written == 0, "an unchanged build rewrites nothing"


# --- in a real browser ----------------------------------------------------------------


@pytest.fixture(scope="module")
def served(site: Config) -> Iterator[PreviewServer]:
    with preview(site.site.output_dir) as server:
        yield server


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_window_size(1280, 1000)
    yield driver
    driver.quit()


LOAD_ALL_IMAGES = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach(image => { image.loading = 'eager'; });
Promise.all(images.map(image => image.decode().then(() => null, () => image.src))).then(
  results => done(results.filter(Boolean)));
"""


def console_errors(driver: Any) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def fetch(url: str) -> tuple[int, str, bytes]:
    assert urlsplit(url).hostname == "127.0.0.1"
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


def check_feed(body: bytes, kind: str) -> None:
    if kind == "json":
        assert json.loads(body)["version"] == "https://jsonfeed.org/version/1.1"
    else:
        parsed = feedparser.parse(body)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.version.startswith(kind)


@needs_chromium
def test_front_page_links_every_topic_to_its_feeds(
    browser: Any, served: PreviewServer, site: Config, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served.url)
    assert browser.title == TITLE
    assert console_errors(browser) == []
    assert browser.execute_script("return document.scripts.length") == 0
    failed = browser.execute_async_script(LOAD_ALL_IMAGES)  # lazy ones too
    assert failed == []
    assert len(browser.find_elements(By.TAG_NAME, "img")) > 20

    output = site.site.output_dir
    slugs = sorted(p.parent.name for p in (output / "topics").glob("*/rss.xml"))
    assert len(slugs) == 10
    for slug in slugs:
        item = browser.find_element(By.CSS_SELECTOR, f'li.topic[data-topic="{slug}"]')
        assert re.search(r"\d+ stor(y|ies)", item.text)
        links = {
            a.get_attribute("data-format"): a for a in item.find_elements(By.CSS_SELECTOR, "a.feed")
        }
        assert set(links) == set(FEED_FILES)
        for kind, link in links.items():
            href = link.get_attribute("href")  # resolved by the browser
            assert href == f"{served.url}topics/{slug}/{FEED_FILES[kind]}"
            status, _, body = fetch(href)
            assert status == 200
            assert body == (output / "topics" / slug / FEED_FILES[kind]).read_bytes()
            check_feed(body, kind)

    everything = browser.find_element(By.ID, "subscribe")
    hrefs = [a.get_attribute("href") for a in everything.find_elements(By.TAG_NAME, "a")]
    assert f"{served.url}index.opml" in hrefs
    for kind, name in FEED_FILES.items():
        assert f"{served.url}{name}" in hrefs
        check_feed(fetch(f"{served.url}{name}")[2], kind)
    opml = etree.fromstring(fetch(f"{served.url}index.opml")[2])
    assert len(opml.findall("body/outline")) == len(slugs) + 1

    shot = tmp_path / "index.png"
    browser.set_window_size(1200, 1500)
    browser.save_screenshot(str(shot))
    browser.set_window_size(1280, 1000)
    assert shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, os.environ[SCREENSHOT_ENV])


@needs_chromium
def test_topic_page_in_the_browser(browser: Any, served: PreviewServer, site: Config) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served.url + "topics/r-d-3-labs/")
    assert browser.title == f"{TITLE}: R&D <3 Labs"
    assert console_errors(browser) == []
    assert browser.find_element(By.TAG_NAME, "h1").text == "R&D <3 Labs"
    story = browser.find_element(By.CSS_SELECTOR, "article h3")
    assert story.text == 'Chips & "Dips" <3'
    links = browser.find_elements(By.CSS_SELECTOR, "#subscribe a.feed")
    assert [a.get_attribute("href") for a in links] == [
        f"{served.url}topics/r-d-3-labs/{name}" for name in FEED_FILES.values()
    ]
    browser.find_element(By.LINK_TEXT, "All topics").click()
    assert browser.current_url == served.url
    assert console_errors(browser) == []


@needs_chromium
def test_readable_on_a_phone(browser: Any, served: PreviewServer) -> None:
    browser.set_window_size(390, 844)
    try:
        for path in ("", "topics/ai/"):
            browser.get(served.url + path)
            width, viewport = browser.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]"
            )
            assert width <= viewport, f"{path or 'index'} scrolls sideways on a phone"
            size = browser.execute_script(
                "return parseFloat(getComputedStyle(document.body).fontSize)"
            )
            assert size >= 16
    finally:
        browser.set_window_size(1280, 1000)


CONTRAST_SCRIPT = """
function background(element) {
  for (; element; element = element.parentElement) {
    const colour = getComputedStyle(element).backgroundColor;
    if (colour !== 'rgba(0, 0, 0, 0)' && colour !== 'transparent') return colour;
  }
  return 'rgb(255, 255, 255)';
}
return Array.from(document.querySelectorAll(arguments[0])).map(
  e => [e.tagName + '.' + e.className, getComputedStyle(e).color, background(e)]);
"""
TEXT = "h1, h2, h3 a, p, .meta, .count, .tags a, a.feed, a.topic-name, nav a, .brand a, footer p"


def luminance(colour: str) -> float:
    channels = [int(c) / 255 for c in re.findall(r"\d+", colour)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@needs_chromium
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_meets_wcag_aa(browser: Any, served: PreviewServer, scheme: str) -> None:
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )
    try:
        browser.get(served.url)
        checked = browser.execute_script(CONTRAST_SCRIPT, TEXT)
        assert len(checked) > 20
        low = [(name, fg, bg) for name, fg, bg in checked if contrast(fg, bg) < 4.5]
        assert low == []
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def open_feed(browser: Any, url: str) -> None:
    """Open a feed and wait until the stylesheet has made its page: Chromium may return
    from loading the XML before the transformed document replaced it."""
    from selenium.webdriver.support.wait import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 10).until(
        lambda driver: driver.execute_script(
            "return document.title !== '' && document.querySelector('main li, main p') !== null"
        )
    )


@needs_chromium
def test_a_feed_opened_in_the_browser_explains_how_to_subscribe(
    browser: Any, served: PreviewServer, site: Config
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served.url)
    if not browser.execute_script("return typeof XSLTProcessor === 'function'"):
        pytest.skip("this Chromium no longer runs XSLT; feeds show as XML")
    output = site.site.output_dir
    for relative in ("rss.xml", "atom.xml", "topics/r-d-3-labs/rss.xml", "topics/ai/atom.xml"):
        feed = feedparser.parse((output / relative).read_bytes())
        open_feed(browser, served.url + relative)
        assert browser.title == f"{feed.feed.title} (web feed)"
        assert browser.find_element(By.TAG_NAME, "h1").text == feed.feed.title
        note = browser.find_element(By.TAG_NAME, "header").text
        assert "copy this address into your feed reader" in note
        assert browser.find_element(By.TAG_NAME, "code").text == (site.site.base_url + relative)
        assert len(browser.find_elements(By.CSS_SELECTOR, "main li")) == len(feed.entries)
        assert console_errors(browser) == []


# Chromium 156 lays a deprecation banner over the top of pages made with XSLT. This
# Chromium may be older, so the banner is drawn the way it appears: a layer fixed to the
# top of the viewport, two lines of text tall on a desktop, four on a phone.
SIMULATED_BANNER = """
const banner = document.createElement('div');
banner.style.cssText = 'position:fixed;top:0;left:0;right:0;z-index:2147483647;' +
  'background:rgb(255,0,255);height:' + arguments[0] + 'px';
document.documentElement.appendChild(banner);
const box = element => {
  const r = element.getBoundingClientRect();
  return [r.left, r.top, r.right, r.bottom];
};
const code = document.querySelector('header code');
const line = code.getClientRects()[0];  // the address may wrap: its first line
const first = [line.left, line.top, line.right, line.bottom];
const hit = document.elementFromPoint((first[0] + first[2]) / 2, (first[1] + first[3]) / 2);
return {
  intro: Array.from(document.querySelectorAll('header.note p')).map(box),
  code: first,
  hit: hit === code || code.contains(hit),
  scale: window.devicePixelRatio,
};
"""
MAGENTA = (255, 0, 255)


@needs_chromium
@pytest.mark.parametrize(("window", "banner"), [((1280, 1000), 72), ((390, 844), 128)])
def test_the_xslt_banner_leaves_the_subscribe_note_visible(
    browser: Any, served: PreviewServer, tmp_path: Path, window: tuple[int, int], banner: int
) -> None:
    browser.get(served.url)
    if not browser.execute_script("return typeof XSLTProcessor === 'function'"):
        pytest.skip("this Chromium no longer runs XSLT; feeds show as XML")
    browser.set_window_size(*window)
    try:
        open_feed(browser, served.url + "topics/ai/rss.xml")
        layout = browser.execute_script(SIMULATED_BANNER, banner)
        shot = tmp_path / "feed.png"
        browser.save_screenshot(str(shot))
    finally:
        browser.set_window_size(1280, 1000)
    assert layout["hit"], "the address box is under the banner"
    assert len(layout["intro"]) == 3
    for left, top, right, bottom in [*layout["intro"], layout["code"]]:
        assert top >= banner and bottom > top and right > left
    width, height, rows, size = png_pixels(shot.read_bytes())
    scale = layout["scale"]

    def pixel(x: float, y: float) -> tuple[int, ...]:
        return tuple(rows[int(y * scale)][int(x * scale) * size : int(x * scale) * size + 3])

    # The top of the screenshot is the simulated banner, or (Chromium 156.0.8078.114 and
    # later draw their own) Chromium's banner over it: neither may cover the address.
    shown_at_top = pixel(5, banner / 2)
    left, top, right, bottom = layout["code"]
    assert right * scale <= width and bottom * scale <= height, "the address is on screen"
    region = {pixel(x, y) for x in range(int(left) + 2, int(right) - 2, 2)
              for y in range(int(top) + 2, int(bottom) - 2)}  # fmt: skip
    assert MAGENTA not in region and shown_at_top not in region
    assert len(region) > 3, "the address is drawn (text, not a blank box)"
    if os.environ.get(SCREENSHOT_ENV):
        target = Path(os.environ[SCREENSHOT_ENV])
        shutil.copyfile(shot, target.with_name(f"{target.stem}-feed-{window[0]}.png"))


@needs_chromium
def test_live_reload_reloads_an_open_page(browser: Any, site: Config) -> None:
    from selenium.webdriver.support.wait import WebDriverWait

    with preview(site.site.output_dir, live_reload=True) as server:
        browser.get(server.url + "topics/ai/")
        wait = WebDriverWait(browser, 15)
        wait.until(lambda _: server.listening == 1)  # the page's event stream is open
        browser.execute_script("window.before_the_build = true")
        server.changed()
        wait.until(lambda d: d.execute_script("return window.before_the_build === undefined"))
        assert browser.execute_script("return document.querySelector('h1').textContent") == "AI"
        assert "since=1" in browser.page_source
        assert console_errors(browser) == []


# --- compiled templates ---------------------------------------------------------------


def test_compiled_templates_are_kept_and_a_bad_cache_is_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from aggregator.render import html

    from .factories import tree_bytes

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))

    def pages(name: str) -> dict[str, bytes]:
        html.environment.cache_clear()  # as a new process starts
        folder = tmp_path / name
        shutil.copytree(EXAMPLES, folder / "records")
        config = load_config(write_config(folder, [folder / "records"], title=TITLE))
        build(config)
        return {name: data for name, data in tree_bytes(config.site.output_dir).items()
                if name.endswith(".html")}  # fmt: skip

    try:
        compiling = pages("first")
        kept = sorted(temporary.glob("_jinja2-cache-*/*.cache"))
        assert len(kept) >= 4  # base, index, topic, macros: compiled once, kept
        assert pages("second") == compiling  # from the compiled templates
        for path in kept:
            path.write_bytes(b"not a compiled template")
        assert pages("damaged") == compiling
        for path in kept:
            path.unlink()
        kept[0].parent.rmdir()
        kept[0].parent.write_text("a file where the cache folder goes")
        assert pages("unusable") == compiling  # no cache to be had: compiled each time
    finally:
        html.environment.cache_clear()
