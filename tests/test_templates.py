"""[site] templates: the operator's own Jinja2 templates take the place of ours."""

from __future__ import annotations

from pathlib import Path

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.pipeline import build

from .factories import fields, write_config, write_record

TOPIC = """{% extends "base.html" %}
{% block main %}<main id="main"><p class="mine">{{ title }}: {{ stories | length }}</p></main>
{% endblock %}
"""


def test_own_templates_override_ours_and_a_change_renders_the_pages_again(tmp_path: Path) -> None:
    write_record(tmp_path / "records", "a.md", fields(1, topics=["AI"]))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "topic.html").write_text(TOPIC, encoding="utf-8")
    path = write_config(tmp_path, ["records"])
    path.write_text(path.read_text().replace("[site]\n", '[site]\ntemplates = "mine"\n'))
    config = load_config(path)
    build(config)
    page = (tmp_path / "out" / "topics" / "ai" / "index.html").read_text(encoding="utf-8")
    assert '<p class="mine">Test News: AI: 1</p>' in page
    assert "<!DOCTYPE html>" in page  # our base.html, which the override extends
    index = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert 'class="mine"' not in index  # a template not overridden stays ours
    (mine / "topic.html").write_text(TOPIC.replace("mine", "yours"), encoding="utf-8")
    report = build(config)  # an incremental build sees the template change
    assert tmp_path / "out" / "topics" / "ai" / "index.html" in report.written_paths
    page = (tmp_path / "out" / "topics" / "ai" / "index.html").read_text(encoding="utf-8")
    assert '<p class="yours">' in page


def test_a_missing_templates_folder_is_a_config_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "records").mkdir()
    path = write_config(tmp_path, ["records"])
    path.write_text(path.read_text().replace("[site]\n", '[site]\ntemplates = "nope"\n'))
    assert main(["build", "--config", str(path)]) == 2
    assert "site.templates: expected an existing directory" in capsys.readouterr().err
