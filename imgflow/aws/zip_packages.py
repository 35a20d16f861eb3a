"""The third-party packages the Lambda zip carries, one pinned requirement per line.

Every package the handlers import beyond imgflow and the Lambda runtime's boto3/botocore,
with its own dependencies (they are fetched with ``--no-deps``): adding one is one line.
Wheels are fetched for the function's runtime and architecture (imgflow.aws.zips), never
copied from this machine's site-packages, so compiled ones match Lambda's Python.
"""

from __future__ import annotations

PACKAGES: tuple[str, ...] = (
    "httpx==0.28.1",
    "httpcore==1.0.9",
    "h11==0.16.0",
    "anyio==4.16.0",
    "idna==3.20",
    "certifi==2026.10.19.post1",
    "typing_extensions==4.16.0",
    "httptools==0.9.0",  # compiled: the HTTP/1.1 parser (llhttp)
    "truststore==0.10.5",  # fetch.trust_store: system
    "brotli==1.2.1",  # compiled: Content-Encoding br (engine/decode.py)
    "backports.zstd==1.8.0",  # compiled: Content-Encoding zstd (engine/decode.py)
    "protego==0.7.0",  # robots.txt (engine/robots.py)
    "uvloop==0.23.0",  # compiled: the event loop of a batch's fetching (engine/loop.py)
)
