"""What a URL, or a message quoting one, may show: never a password, inline or as a query parameter.

Below config and settings (both use it): a config's database URL is checked with
`secret_query_keys`, and whatever shows a URL (the CLI, a log line, an error, `repr`)
shows `without_passwords(url)`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

# scheme://user:PASSWORD@host: the password runs to the URL's last "@", so one with an unescaped "@" is hidden whole.
_URL_PASSWORD = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://[^:/@?#\s'\"]*):[^\s'\"]*@")
# ...?password=...: libpq and some drivers also take the password (or a token) as a query parameter.
SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "sslpassword", "secret", "token", "api_key", "apikey")
_QUERY_SECRET = re.compile(rf"(?i)([?&](?:{'|'.join(SECRET_QUERY_KEYS)})=)[^&#\s'\"]*")


def secret_query_keys(url: str) -> list[str]:
    """The query parameters of `url` that carry a secret (postgresql://u@h/db?password=...)."""
    return sorted({key for key, _ in parse_qsl(urlsplit(url).query) if key.lower() in SECRET_QUERY_KEYS})


def error_line(error: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message` of a (database) error, its driver's own message if it wraps one,
    without passwords: what a log line or /health may show of it."""
    first_line = (str(getattr(error, "orig", None) or error).splitlines() or [""])[0]
    return without_passwords(f"{type(error).__name__}: {first_line}")[:limit]


def without_passwords(text: str) -> str:
    """`text` (a URL, or a message quoting URLs) with each URL's password, inline or as a query parameter, as ***."""
    return _QUERY_SECRET.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", text))
