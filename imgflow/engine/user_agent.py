"""imgflow's own User-Agent: the product, its version and who to contact.

A site owner who sees ``imgflow/0.1.0 (+https://example.org/bot)`` in a log knows what
fetched the images and whom to ask; a User-Agent that poses as a browser hides both.
"""

from __future__ import annotations

import re

from imgflow import __version__

PRODUCT = "imgflow"  # also the product token robots.txt groups are matched against

_EMAIL = re.compile(r"^(mailto:)?[^@\s<>()]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d+)?(/[^\s()]*)?$")
# Product tokens that only browsers (and tools posing as them) send.
_BROWSER = re.compile(r"\b(mozilla|chrome|firefox|safari|edg|opera|msie|trident)/", re.I)


def default_user_agent(contact: str | None) -> str:
    """``imgflow/<version>``, with ``(+<contact>)`` when a contact is set."""
    base = f"{PRODUCT}/{__version__}"
    return f"{base} (+{contact})" if contact else base


def valid_contact(contact: str) -> bool:
    """True for an http(s) URL or an e-mail address (``mailto:`` allowed)."""
    return bool(_URL.match(contact) or _EMAIL.match(contact))


def poses_as_browser(user_agent: str) -> bool:
    """True when `user_agent` carries a browser's product token (Mozilla/5.0 ...)."""
    return bool(_BROWSER.search(user_agent))
