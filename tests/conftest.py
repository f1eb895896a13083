from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The shared corpus sits beside the repository (CI: a copy of shared/ beside the clone);
# a git worktree nested deeper finds it in the nearest ancestor that has one.
CORPUS = next(
    (
        folder / "shared" / "corpus"
        for folder in ROOT.parents
        if (folder / "shared" / "corpus").is_dir()
    ),
    ROOT.parent / "shared" / "corpus",
)


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a config.toml in tmp_path whose single source is `records_dir`."""

    def write(records_dir: Path, extra: str = "") -> Path:
        path = tmp_path / "config.toml"
        path.write_text(
            f"""
[site]
title = "Test News"
base_url = "https://feeds.example.org/news/"
output_dir = "out"

[[sources]]
path = "{records_dir}"
{extra}
""",
            encoding="utf-8",
        )
        return path

    return write
