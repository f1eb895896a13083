"""Acceptance: a folder of hostile records builds safely with the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import feedparser

from .factories import all_feed_problems, fields, write_config, xml_files

GOOD_TITLES = {
    "good-1.md": "Plain good story",
    "good-emoji.json": "Rocket 🚀 launch, ñandú and café",
    "good-rtl.json": "مرحبا بالعالم: خبر جيد",
    "good-cjk.json": "東京で新しいAIモデル",
    "markup.md": "Sneaky title",  # tags and script removed, record kept
    "control-chars.json": "Control characters gone",
    "traversal-topic.md": "Topics that try to escape",
    "bad-image.md": "Story with a bad image",
    "idn.json": "Story on an internationalised domain",
}
# Rejected files: name -> words its one error line must contain.
REJECTED = {
    "bad-link.md": "webUrl: only absolute http(s) links are allowed, got javascript:",
    "alias-bomb.yaml": "[limits] max_yaml_aliases",
    "deep-nesting.json": "[limits] max_yaml_depth",
    "deep-nesting.md": "[limits] max_yaml_depth",
    "huge.md": "[limits] max_file_bytes",
    "binary.md": "binary file",
    "python-tag.yaml": "could not determine a constructor for the tag",
    "custom-tag.md": "could not determine a constructor for the tag",
    "not-utf8.md": "not valid UTF-8",
    "bad-date.yaml": "invalid YAML value",
    "no-title.json": "title: missing or empty",
}


def front_matter(fields: str) -> str:
    return f"---\n{fields}---\nBody text is ignored.\n"


def write_hostile_folder(folder: Path, outside: Path) -> None:
    folder.mkdir()
    w = {name: folder / name for name in [*GOOD_TITLES, *REJECTED]}
    base = "webUrl: https://good.example/{n}\npublishedDateTime: 2026-03-0{d}T08:00:00Z\n"
    w["good-1.md"].write_text(
        front_matter("title: Plain good story\n" + base.format(n=1, d=1) + "topics: [AI]\n"),
        "utf-8",
    )
    for n, name in enumerate(["good-emoji.json", "good-rtl.json", "good-cjk.json"], start=2):
        w[name].write_text(
            json.dumps(fields(n, title=GOOD_TITLES[name], topics=["AI", "Мир"])), "utf-8"
        )
    w["markup.md"].write_text(front_matter(
        "title: \"<script>alert('t')</script><b>Sneaky</b> &lt;i&gt;title&lt;/i&gt;\"\n"
        + base.format(n=5, d=2)
        + "excerpt: >-\n  <p onclick=\"x()\">Hi <a href=\"javascript:alert(1)\">js</a>"
        "<iframe src=\"https://evil.example/\"></iframe><img src=\"data:image/png,x\">"
        "<style>*{}</style><svg onload=alert(1)></svg> &amp; ]]&gt; done</p>\n"
        "provider: {name: '<i>Evil</i> Corp', domain: 'evil.example'}\n"), "utf-8")  # fmt: skip
    w["control-chars.json"].write_text(json.dumps({
        "title": "Control\u0000 characters\u0001\u0008\u000b\u001f\ufffe\uffff\ud800 gone",
        "webUrl": "https://good.example/6", "publishedDateTime": "2026-03-03T08:00:00Z",
        "topics": ["Bad\u0007Bell"], "excerpt": "x\u0000y",
        "provider": {"name": "Pro\u0002vider"},
        "related": [{"title": "Rel\u0003ated", "webUrl": "https://r.example/\u0004"}],
    }), "utf-8")  # fmt: skip
    w["traversal-topic.md"].write_text(front_matter(
        "title: Topics that try to escape\n" + base.format(n=7, d=4)
        + "topics: ['../../etc', '../../../tmp/evil', '/root/.ssh', '..', 'C:\\\\Windows']\n"
    ), "utf-8")  # fmt: skip
    w["bad-image.md"].write_text(front_matter(
        "title: Story with a bad image\n" + base.format(n=8, d=5)
        + "images: ['javascript:alert(1)', 'data:image/png;base64,AAAA', '/relative.png']\n"
        + "related: [{title: x, webUrl: 'javascript:alert(2)'}]\n"), "utf-8")  # fmt: skip
    w["idn.json"].write_text(
        json.dumps(
            fields(9, title=GOOD_TITLES["idn.json"], webUrl="https://bücher.example/straße/ä?q=ü")
        ),
        "utf-8",
    )
    w["bad-link.md"].write_text(
        front_matter(
            "title: Bad link\nwebUrl: 'javascript:alert(1)'\npublishedDateTime: 2026-03-01\n"
        ),
        "utf-8",
    )
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    w["alias-bomb.yaml"].write_text(
        "title: Bomb\nwebUrl: https://bomb.example/\npublishedDateTime: 2026-03-01\n"
        + "\n".join(lines) + "\nquality: *a9\n", "utf-8")  # fmt: skip
    w["deep-nesting.json"].write_text(
        '{"title": "Deep", "webUrl": "https://deep.example/", "publishedDateTime": "2026-03-01",'
        ' "x": ' + "[" * 500 + "]" * 500 + "}", "utf-8")  # fmt: skip
    w["deep-nesting.md"].write_text(front_matter(
        "title: Deep\nwebUrl: https://deep.example/2\npublishedDateTime: 2026-03-01\nx: "
        + "{a: " * 100 + "1" + "}" * 100 + "\n"), "utf-8")  # fmt: skip
    w["huge.md"].write_text(front_matter(
        "title: Huge\nwebUrl: https://huge.example/\npublishedDateTime: 2026-03-01\n"
        + "excerpt: '" + "x" * (1024 * 1024 + 10) + "'\n"), "utf-8")  # fmt: skip
    w["binary.md"].write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00" + bytes(range(256)))
    w["python-tag.yaml"].write_text(
        "title: !!python/object/apply:os.system ['touch /tmp/pwned-by-aggregator']\n"
        "webUrl: https://py.example/\npublishedDateTime: 2026-03-01\n", "utf-8")  # fmt: skip
    w["custom-tag.md"].write_text(
        front_matter(
            "title: !evil x\nwebUrl: https://tag.example/\npublishedDateTime: 2026-03-01\n"
        ),
        "utf-8",
    )
    w["not-utf8.md"].write_bytes(b"---\ntitle: caf\xe9\n---\n")
    w["bad-date.yaml"].write_text(
        "title: Bad date\nwebUrl: https://date.example/\npublishedDateTime: 2026-02-30\n", "utf-8"
    )
    w["no-title.json"].write_text(
        json.dumps(fields(10, title="<script>only markup</script>")), "utf-8"
    )
    (outside / "secret.md").write_text(front_matter(
        "title: SECRET from outside\nwebUrl: https://secret.example/\n"
        "publishedDateTime: 2026-03-09\n"), "utf-8")  # fmt: skip
    (folder / "link-out.md").symlink_to(outside / "secret.md")
    (folder / "link-etc.md").symlink_to("/etc/passwd")
    (folder / "loop").symlink_to(folder, target_is_directory=True)


def test_hostile_records_build_safely(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    records = tmp_path / "records"
    write_hostile_folder(records, outside)
    config = write_config(tmp_path, [records])
    result = subprocess.run(
        [sys.executable, "-m", "aggregator", "build", "--config", str(config)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    # One clear line per rejected file, naming the file and the reason.
    assert len(errors) == len(REJECTED), "\n".join(errors)
    for name, words in REJECTED.items():
        [line] = [e for e in errors if e.startswith(str(records / name))]
        assert words in line, line
    assert f"{len(REJECTED)} rejected" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert any("bad-image.md" in w and "image dropped" in w for w in warnings)
    assert any("bad-image.md" in w and "related link dropped" in w for w in warnings)

    out = tmp_path / "out"
    assert all_feed_problems(out) == {}
    everything = b"".join(path.read_bytes() for path in xml_files(out))
    for bad in (b"SECRET", b"root:x:0", b"lol", b"alert(", b"javascript", b"data:image"):
        assert bad not in everything
    parsed = feedparser.parse((out / "rss.xml").read_bytes())
    titles = {entry.title for entry in parsed.entries}
    assert set(GOOD_TITLES.values()) <= titles
    assert len(parsed.entries) == len(GOOD_TITLES)
    markup = next(e for e in parsed.entries if e.title == "Sneaky title")
    assert "Hi" in markup.summary and "&amp; ]]&gt; done" in markup.summary
    assert markup.author == "Evil Corp"
    idn = next(e for e in parsed.entries if e.title == GOOD_TITLES["idn.json"])
    assert idn.link == "https://xn--bcher-kva.example/stra%C3%9Fe/%C3%A4?q=%C3%BC"

    # Nothing outside the output folder: the tree holds only what we put there.
    made = {str(p.relative_to(tmp_path)).split("/")[0] for p in tmp_path.rglob("*")}
    assert made == {"config.toml", "records", "outside", "out", ".aggregator"}
    assert sorted(p.name for p in outside.iterdir()) == ["secret.md"]
    assert not Path("/tmp/pwned-by-aggregator").exists()
    topic_dirs = sorted(p.name for p in (out / "topics").iterdir())
    assert all("/" not in name and not name.startswith(".") for name in topic_dirs)
    assert "etc" in topic_dirs  # "../../etc" became an ordinary topic folder inside out/
