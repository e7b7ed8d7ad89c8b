"""Masking secrets before anything is logged: credentials in URIs, secret-looking keys and
environment values, token shapes. MLflow is often shared; nothing logged there may hold a secret."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_SECRET_WORDS = r"(?:token|secret|password|passwd|api[_-]?key|access[_-]?key|credential)"
_SECRET_KEY = re.compile(_SECRET_WORDS, re.I)
_URI_CREDENTIALS = re.compile(r"(\w+://)[^/\s:@]+:[^/\s@]+@")
# A secret-looking query parameter's value: s3://bucket?secret_key=..., ...?password=...
_QUERY_SECRETS = re.compile(rf"([?&][^=&#\s]*{_SECRET_WORDS}[^=&#\s]*=)[^&#\s]+", re.I)
_TOKEN_SHAPES = re.compile(r"\bhf_[A-Za-z0-9]{20,}|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")


def redact_uri(uri: str) -> str:
    """The URI without user:password."""
    parts = urlsplit(uri)
    if parts.password or parts.username:
        host = parts.hostname or ""
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def without_userinfo(uri: str) -> str:
    """The URI without its user info (``user:password@``), as it may be stored: unlike
    :func:`redact_uri`, still a URI of the same store."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def redact(text: str) -> str:
    """``text`` as it may be logged: credentials in URIs (user info, secret-looking query
    parameters), the values of secret-looking environment variables (HF_TOKEN,
    AWS_SECRET_ACCESS_KEY, ...) and Hugging Face / AWS key shapes masked."""
    text = _URI_CREDENTIALS.sub(r"\1***@", text)
    text = _QUERY_SECRETS.sub(r"\1***", text)
    for value in _secret_env_values():
        text = text.replace(value, "***")
    return _TOKEN_SHAPES.sub("***", text)


def redact_text(text: str) -> str:
    """A space file as logged: :func:`redact`, and the values of secret-looking keys masked."""
    def mask(line: str) -> str:
        key = re.split("[:=]", line, maxsplit=1)[0]
        return re.sub(r"[:=]\s*\S.*$", ": '***'", line) if _SECRET_KEY.search(key) else line

    return "\n".join(mask(line) for line in redact(text).splitlines()) + "\n"


def redact_mapping(values: dict[str, Any]) -> dict[str, Any]:
    """A config as logged: values under secret-looking keys masked (nested too), strings redacted."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if _SECRET_KEY.search(key):
            out[key] = "***"
        elif isinstance(value, dict):
            out[key] = redact_mapping(value)
        else:
            out[key] = redact(value) if isinstance(value, str) else value
    return out


def _secret_env_values() -> list[str]:
    """Values of environment variables named like secrets; short or all-letter values (flags
    such as ``false`` or ``disabled``) are left alone so ordinary words are not masked."""
    values = {v for k, v in os.environ.items() if _SECRET_KEY.search(k) and len(v) >= 8 and not v.isalpha()}
    return sorted(values, key=len, reverse=True)
