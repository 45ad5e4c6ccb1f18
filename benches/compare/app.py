"""The release-day origin for benches/compare/stampede.sh, as a WSGI app.

Served by gunicorn with sync workers: each worker renders one page at a
time, so 4 workers at 20 ms a page serve about 200 pages/s, and the rest
wait in the listen backlog, which nothing in front can see into.

- ``/download/<name>``: 256 KiB of bytes at once, no sleep, like a static
  file (Content-Length, Last-Modified, ETag, Cache-Control).
- anything else: a page that takes 20 ms to render (a sleep, so the
  worker is held as a template and a database query would hold it, without
  spending the 2 shared cores the load generator and the proxy need).

Run: gunicorn -w 4 -k sync --chdir benches/compare app:app
"""

import time

DOWNLOAD = bytes(range(256)) * 1024  # 256 KiB
DOWNLOAD_HEADERS = [
    ("Content-Type", "application/octet-stream"),
    ("Content-Length", str(len(DOWNLOAD))),
    ("Last-Modified", "Sun, 29 Nov 2026 12:00:00 GMT"),
    ("ETag", '"example-os-3.0"'),
    ("Cache-Control", "public, max-age=3600"),
]
PAGE_SECONDS = 0.020
PAGE = (
    b"<!doctype html><meta charset=utf-8><title>Example OS 3.0</title>"
    b"<h1>Example OS 3.0 is out</h1>"
    b'<p><a href="/download/example-os-3.0.iso">Download</a></p>\n'
)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path.startswith("/download/") and len(path) > len("/download/"):
        start_response("200 OK", list(DOWNLOAD_HEADERS))
        return [DOWNLOAD]
    time.sleep(PAGE_SECONDS)
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(PAGE))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [PAGE]
