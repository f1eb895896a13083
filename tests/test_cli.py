from __future__ import annotations

import shutil
from pathlib import Path

from aggregator.cli import main

from .conftest import ROOT


def test_build_of_bundled_examples_reports_the_malformed_record(tmp_path: Path, capsys) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    code = main(["build", "--config", str(tmp_path / "config.toml")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "malformed-date-example.md:5: error: publishedDateTime" in err
    assert "1 rejected" in out
    assert (tmp_path / "feeds" / "rss.xml").is_file()
    assert (tmp_path / "feeds" / "topics" / "ai" / "atom.xml").is_file()
