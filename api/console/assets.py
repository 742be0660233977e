"""Front-end files served under ``/console/static``: vendored, pinned, integrity-checked.

Third-party code is copied into ``static/`` at a pinned version (never loaded from a CDN at
run time); each file's Subresource Integrity hash is written here, put on its ``<script>`` or
``<link>`` tag, and checked against the file by a test, so an edited or swapped file is
caught before a browser refuses it.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATES_DIR = Path(__file__).parent / "templates"

# name -> SRI integrity. htmx.org 2.0.11 is dist/htmx.min.js of the npm registry's tarball
# (`npm pack htmx.org@2.0.11`), whose registry integrity is
# sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==
ASSETS: dict[str, str] = {
    "htmx-2.0.11.min.js": "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg",
    "console.css": "",
    "console.js": "",
}


def integrity_of(path: Path) -> str:
    """The SRI value (sha384) of a file, as browsers compute it."""
    digest = hashlib.sha384(path.read_bytes()).digest()
    return "sha384-" + base64.b64encode(digest).decode()


def integrity(name: str) -> str:
    """The pinned hash of a vendored file; our own files are hashed as they are now."""
    pinned = ASSETS[name]
    return pinned or integrity_of(STATIC_DIR / name)
