"""Settings of a service that is nginx serving the single-page app (the built-in `web`): the program
renders its nginx.conf (components/app/web_server.py) instead of relying on the image's."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from components.config.base import AbsolutePath, _Strict

_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")
# 003's security headers ("Security Headers", its nginx snippet) with two differences: X-XSS-Protection
# is "0" (browsers removed the XSS auditor that "1; mode=block" switched on, and where it remains it
# can be abused to hide parts of a page: OWASP's and MDN's advice), and Referrer-Policy as the edge sends.
SECURITY_HEADERS: dict[str, str] = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "X-XSS-Protection": "0",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline';"
    ),
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
GZIP_TYPES = [
    "text/plain",
    "text/css",
    "text/xml",
    "application/javascript",
    "application/json",
    "application/xml",
    "image/svg+xml",
]


class NginxSettings(_Strict):
    """nginx serving the built single-page app: the health path its probes use, every unknown path
    answered with index.html, security headers, gzip, no version in headers, temp files on /tmp."""

    root: AbsolutePath = "/usr/share/nginx/html"
    """Where the image keeps the built app (000's Dockerfile copies the build here)."""
    security_headers: dict[str, Annotated[str, Field(min_length=1)]] = SECURITY_HEADERS
    """Response headers on every answer (003's, see docs/seeds-contract.md); a stack's own replace these."""
    gzip_types: list[Annotated[str, Field(pattern=r"^[a-z]+/[a-z0-9.+-]+$")]] = GZIP_TYPES
    """MIME types compressed with gzip (text/html always is)."""
    immutable_prefix: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._/-]*/$")] | None = "/static/"
    """Where the build puts content-hashed assets (create-react-app: /static/): cached for a year, and a
    missing one is a 404 instead of the app's index."""

    @field_validator("security_headers")
    @classmethod
    def _header_lines(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise PydanticCustomError("format", "'{name}' is not an HTTP header name", {"name": name})
            if any(ord(c) < 32 for c in value) or '"' in value:
                raise PydanticCustomError(
                    "format", "the value of {name} may not hold quotes or control characters", {"name": name}
                )
        return headers
