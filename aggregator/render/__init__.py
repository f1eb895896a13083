"""Turn planned feeds into bytes: RSS, Atom (and, later, OPML and HTML)."""
