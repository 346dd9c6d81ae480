"""The DSMB safety report: the log folded as of a cut-off, as one self-contained HTML file
(or a PDF printed from it), in an open (pooled) and a closed (DSMB-only) version.

``snapshot`` reads the log; ``model`` (with ``rules``, ``listings``, ``changes``) turns
snapshots into the report's data; ``render`` writes HTML with Jinja2; ``pdf`` prints it.
"""
