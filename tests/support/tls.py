"""A certificate authority made for one test (trustme), and certificates it issues.

ca = TestCA(tmp_path)
cert = ca.leaf("localhost", "127.0.0.1")              # Leaf(cert=..., key=...)
old = ca.leaf("localhost", expired=True)
ca.bundle                                             # the CA's PEM, to trust it
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class Leaf:
    """A server certificate (with its chain) and its private key, as PEM files."""

    cert: Path
    key: Path


class TestCA:
    """A fresh CA whose PEM bundle is written to `folder`/ca.pem."""

    __test__ = False  # not a test class

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        self.bundle = folder / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.bundle))
        self._count = 0

    def leaf(self, *names: str, expired: bool = False) -> Leaf:
        """A certificate for `names` (host names or IP addresses), expired when asked."""
        self._count += 1
        kwargs = {}
        if expired:
            now = datetime.datetime.now(datetime.UTC)
            kwargs = {
                "not_before": now - datetime.timedelta(days=30),
                "not_after": now - datetime.timedelta(days=1),
            }
        cert = self.ca.issue_cert(*names, **kwargs)  # type: ignore[arg-type]
        stem = self.folder / f"leaf{self._count}"
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        for i, blob in enumerate(cert.cert_chain_pems):
            blob.write_to_path(str(cert_path), append=i > 0)
        cert.private_key_pem.write_to_path(str(key_path))
        return Leaf(cert_path, key_path)
