"""Jinja2 templates of the web tier (a package so setuptools ships the ``*.html`` beside it)."""
