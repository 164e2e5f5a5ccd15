"""The web app: ``python -m capstone serve`` (Flask, server-rendered pages, a JSON API).

`service` answers (one run, every input checked); `app` builds the Flask app (`create_app`)
and guards each request; `pages` and `api` are its two blueprints, `errors` its app-wide error
handlers, `context` what their views read from the app; ``templates/`` and ``static/`` are the
pages' HTML, CSS and one small script.
"""
