"""Turning bytes into raw mappings, one per record (no validation here).

- `documents`: Markdown with front matter, YAML and JSON record documents;
- `plainyaml`: the fast path for the plain YAML that record files are made of;
- `safeyaml`: safe YAML loading with caps on nesting depth and alias expansion;
- `feeds`: a fetched body (RSS, Atom, RDF, JSON Feed, seed API pages) into raw records.

Nothing is imported here, so that importing one parser does not import the others.
"""
