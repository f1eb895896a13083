"""Publishing, the last stage of a build: render every output file whose inputs changed
and write it to the output folder, in an order that never leaves a link to a file that
is not there (the stylesheet, archive documents and feeds first, then the topic pages,
the front page, and the OPML list last); then remove the files of topics that are gone.

`publishing.py` carries it out (`publish`), `plan.py` decides what to render and write,
`folder.py` writes atomically, `changes.py` turns what changed into the one list of
changed paths (WebSub, CDN invalidation), and `storage.py` copies the folder to object
storage (`[site] output_url`). This package imports none of them itself: a rebuild
with nothing to write loads only `folder.py`.
"""
