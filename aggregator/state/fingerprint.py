"""Digests of the program: this package's source, templates and the versions of the
libraries that shape records and feeds. When any of them changes, every file is
parsed and every feed rendered again (the parse context and feed inputs include it).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aggregator.config import Config, SourceConfig

# The libraries that shape records and feeds: (distribution, module, the module's own
# version when its metadata cannot be found beside it).
_LIBRARIES: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("pyyaml", "yaml", lambda module: module.__version__),
    ("feedgen", "feedgen", lambda module: importlib.import_module("feedgen.version").version_str),
    ("lxml", "lxml", lambda module: importlib.import_module("lxml.etree").__version__),
    ("python-slugify", "slugify", lambda module: module.__version__),
    ("nh3", "nh3", lambda module: module.__version__),
)


def program_fingerprint() -> bytes:
    """Digest of this package's source and the versions of the libraries it relies on."""
    digest = hashlib.sha256(sys.version.encode())
    package = Path(__file__).resolve().parent.parent  # aggregator/
    # Templates and the stylesheet shape the output as much as the code does.
    sources = [path for pattern in ("*.py", "*.html", "*.xsl") for path in package.rglob(pattern)]
    for source in sorted(sources):
        digest.update(source.relative_to(package).as_posix().encode())
        digest.update(source.read_bytes())
    for name, module, attribute in _LIBRARIES:
        digest.update(f"{name}={library_version(name, module, attribute)}".encode())
    return digest.digest()


def templates_digest(templates: Path | None) -> bytes:
    """What the pages' own templates hold: a change renders every page again."""
    digest = hashlib.sha256()
    if templates is not None:
        for path in sorted(templates.rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(templates).as_posix().encode() + b"\0")
                digest.update(path.read_bytes())
    return digest.digest()


def library_version(distribution: str, module: str, attribute: Callable[[Any], str]) -> str:
    """The installed version of a library, from the name of its `.dist-info` folder
    beside it: without importing it (feedgen, lxml and nh3 would be a third of a
    no-change rebuild) or importlib.metadata (as slow as the imports). Falls back on
    the module's own version attribute."""
    spec = importlib.util.find_spec(module)  # a top-level name: found, not imported
    if spec is not None and spec.origin:
        folder = Path(spec.origin).parent
        if spec.submodule_search_locations is not None:
            folder = folder.parent  # a package: its folder sits in site-packages
        wanted = _distribution_key(distribution)
        for entry in _entries(str(folder)):
            name, _, version = entry.removesuffix(".dist-info").partition("-")
            if entry.endswith(".dist-info") and _distribution_key(name) == wanted:
                return version
    return attribute(importlib.import_module(module))


def _distribution_key(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()  # PEP 503 normalisation, as wheels spell it


@functools.cache
def _entries(folder: str) -> tuple[str, ...]:
    try:
        return tuple(sorted(os.listdir(folder)))
    except OSError:
        return ()


def program_digest(config: Config) -> bytes:
    """What made the output besides the settings and the records: this program, and the
    operator's own templates (they shape the pages as much as ours do)."""
    return program_fingerprint() + templates_digest(config.site.templates)


def parse_context(config: Config, program: bytes) -> bytes:
    """What parse results depend on besides the file itself."""
    sources = tuple(_source_identity(source) for source in config.sources)
    return program + repr((config.records, config.limits, sources)).encode()


def _source_identity(source: SourceConfig) -> SourceConfig:
    """The source as seen from any working folder (a relative path names the same files)."""
    # Filters and globs choose among parse results; they change none (settings_digest).
    from aggregator.config import FilterConfig

    source = replace(source, include=(), exclude=(), filters=FilterConfig())
    if source.path is None:
        return source
    absolute = Path(os.path.abspath(source.path))
    name = str(absolute) if source.name == str(source.path) else source.name
    return replace(source, path=absolute, name=name)
