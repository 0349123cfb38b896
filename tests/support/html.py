"""What a page's HTML says, for the page tests (sync helpers): the list's rows."""

from __future__ import annotations

import re
from html import unescape


def row_ids(html: str) -> list[str]:
    """The user ids of the table rows, in order."""
    return [unescape(m) for m in re.findall(r'<tr data-user-id="([^"]*)"', html)]
