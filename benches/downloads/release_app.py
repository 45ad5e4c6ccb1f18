"""A sync-worker origin streaming a release file, for `cargo bench --bench downloads`.

Served by gunicorn with sync workers: a worker writes the whole body
itself, one chunk at a time, and is held until its last chunk is in the
socket. What the bench asks is when each worker was free again.

- ``/download/release.bin``: ``RELEASE_BYTES`` (default 50 MiB), each
  8-byte word its own offset (little-endian), so a reader can check any
  part of what it got; 64 KiB a write.

Each response appends ``<start> <end> <pid>`` (seconds since the epoch,
from the first byte handed to gunicorn to the last one written) to the
file named by ``RELEASE_LOG``.

Run: RELEASE_LOG=/tmp/workers.log gunicorn -w 4 -k sync --chdir benches/downloads release_app:app
"""

import os
import struct
import time

SIZE = int(os.environ.get("RELEASE_BYTES", str(50 << 20)))
CHUNK = 64 << 10
LOG = os.environ.get("RELEASE_LOG", "/dev/null")


# Made once per worker, at import: what a worker spends per response is
# sending it, as for a file read from the page cache.
DATA = struct.pack("<%dQ" % (SIZE // 8), *range(0, SIZE - SIZE % 8, 8))


def body(started):
    try:
        for offset in range(0, SIZE, CHUNK):
            yield DATA[offset : offset + CHUNK]
    finally:
        with open(LOG, "a") as log:
            log.write("%.6f %.6f %d\n" % (started, time.time(), os.getpid()))


def app(environ, start_response):
    if environ.get("PATH_INFO") != "/download/release.bin":
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(SIZE)),
        ],
    )
    return body(time.time())
