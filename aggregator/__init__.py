"""aggregator: ranked, per-topic RSS and Atom feeds from a stream of news records."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
