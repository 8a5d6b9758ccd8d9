"""Keeping passwords out of CLI output and logs.

Messages built by pinnacledb already use redacted URIs; this is the second line of defence for
text we do not control (driver errors): every password and secret query value of the
configured URIs is replaced by ``***`` in everything the CLI writes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TextIO
from urllib.parse import quote, quote_plus

from pinnacle_protocols.uri import REDACTED, RedactedURI, redact

__all__ = ["Scrubber", "ScrubbingStream", "secrets_of"]

_MIN_SECRET = 3  # shorter "secrets" would mangle ordinary text; redact() still masks them


def secrets_of(uris: Iterable[str | None]) -> set[str]:
    """Passwords and secret query values found in ``uris`` (unparsable ones are skipped).

    What counts as a secret is :class:`RedactedURI`'s one rule (:meth:`RedactedURI.secrets`).
    """
    found: set[str] = set()
    for text in uris:
        if not text:
            continue
        try:
            uri = RedactedURI.parse(text)
        except Exception:  # noqa: S112 - an unparsable URI is reported elsewhere, redacted
            continue
        found |= uri.secrets()
    return found


class Scrubber:
    """Replaces known secrets (raw and URL-encoded) and ``user:password@`` patterns."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        """Remember ``secrets`` (and their encoded forms)."""
        forms: set[str] = set()
        for s in secrets:
            if len(s) >= _MIN_SECRET:
                forms.update({s, quote(s, safe=""), quote_plus(s), quote(s)})
        self._forms = sorted(forms, key=len, reverse=True)

    def add(self, secrets: Iterable[str]) -> None:
        """Remember more secrets."""
        self._forms = Scrubber([*self._forms, *secrets])._forms

    def __call__(self, text: str) -> str:
        """``text`` with every secret masked."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return redact(text)


def terminal_safe(text: str) -> str:
    """``text`` with every character a terminal could act on shown escaped, as in a repr.

    Identifiers, table names and error messages printed by the CLI come from stored records that
    anyone with write access to a store chose: an escape sequence in a component identifier must
    not clear the screen, retitle the window or hide the lines printed before it (``\\r``,
    ``\\x1b[2J``, a right-to-left override). Newlines and tabs stay; so does one ``\\r`` that
    opens a write (how a progress bar redraws its line). Everything else that is not printable
    (C0/C1 controls, format and separator characters) becomes its ``\\x..``/``\\u....`` escape.
    """
    head = "\r" if text.startswith("\r") else ""
    body = text[len(head) :]
    if all(c.isprintable() or c in "\n\t" for c in body):
        return text
    return head + "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in body)


class ScrubbingStream:
    """A text stream wrapper that scrubs everything written through it.

    It also makes the text :func:`terminal_safe`: what the CLI prints is data from the stores.
    """

    def __init__(self, stream: TextIO, scrub: Scrubber) -> None:
        """Wrap ``stream``."""
        self._stream = stream
        self._scrub = scrub

    def write(self, text: str) -> int:
        """Write the scrubbed, terminal-safe text."""
        self._stream.write(terminal_safe(self._scrub(text)))
        return len(text)

    def flush(self) -> None:
        """Flush the wrapped stream."""
        self._stream.flush()

    def isatty(self) -> bool:
        """Whether the wrapped stream is a terminal."""
        return self._stream.isatty()

    @property
    def encoding(self) -> str:
        """The wrapped stream's encoding."""
        return getattr(self._stream, "encoding", "utf-8")


class ScrubbingFilter(logging.Filter):
    """A logging filter that scrubs the formatted message of each record."""

    def __init__(self, scrub: Scrubber) -> None:
        """Use ``scrub`` on every record."""
        super().__init__()
        self._scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the message with its scrubbed, fully formatted form."""
        record.msg = self._scrub(record.getMessage())
        record.args = None
        if record.exc_info:
            import traceback

            record.exc_text = self._scrub("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True
