"""Where records come from.

- `folder`: find record files in the configured source folders;
- `remote`: collect records from every `url` source (paging, failures, last good copy);
- `http`: fetch one URL (bounded concurrency, timeouts, redirects, deadlines, address
  checks);
- `decompress`: undo HTTP content codings in bounded steps;
- `http_cache`: what a build remembers about each fetched URL (validators, stored pages);
- `results`: what collecting the remote sources gives a build.

Nothing is imported here: a build of local folders only imports `folder` and `results`,
never the HTTP stack (httpx, feedparser).
"""
