"""The WSGI application for gunicorn or any WSGI server: ``webhooks.wsgi:app``."""

from webhooks.app import create_app

app = create_app()
