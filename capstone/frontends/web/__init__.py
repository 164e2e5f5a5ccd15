"""The web app: ``python -m capstone serve`` (Flask, server-rendered pages, a JSON API).

`service` answers (one run, every input checked), `app` renders (pages, API, headers),
``templates/`` and ``static/`` are the pages' HTML, CSS and one small script.
"""
