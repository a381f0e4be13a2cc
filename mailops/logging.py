from __future__ import annotations

import logging
import re

# Values that look like credentials are replaced before any handler writes them.
_PATTERNS = [
    re.compile(r"(?i)(password|passwd|api[_-]?key|secret|authorization|token)(\s*[=:]\s*|\"\s*:\s*\")([^\s\"',}]+)"),
    re.compile(r"SG\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(AUTH (?:PLAIN|LOGIN) )\S+"),
]


def redact(text: str) -> str:
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)
    text = _PATTERNS[1].sub("[redacted]", text)
    return _PATTERNS[2].sub(lambda m: f"{m.group(1)}[redacted]", text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
