"""Writing the review workspace's exports to files: SAS transport (``xpt``, the optional
``export`` extra) and a directory of CSV/XPT files with its manifest (``files``)."""
