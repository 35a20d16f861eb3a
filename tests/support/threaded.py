"""A threaded HTTP server for tests that listens as a real server does.

``socketserver`` listens with a backlog of 5. When more clients connect at once than that
(four runs of 8 connections, a machine under load), Linux drops the client's handshake ACK
once the accept queue is full: the client believes it is connected, sends its request and
waits for a reply until its read timeout. nginx and Apache listen with 511; so does this.
"""

from __future__ import annotations

from http.server import ThreadingHTTPServer


class ThreadedServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` with daemon threads and a real server's listen backlog (511)."""

    daemon_threads = True
    request_queue_size = 511
