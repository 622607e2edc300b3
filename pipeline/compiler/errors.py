"""The compiler's one exception.

Every failure to compile names the statement (its first line) and the reason, so that
``gridctl migrate up`` can refuse a migration before touching the database.
"""

from __future__ import annotations


class CompileError(ValueError):
    """A RisingWave statement the PostgreSQL compiler cannot translate.

    ``statement`` is the first line of the offending statement, ``reason`` what is wrong.
    The caller should stop applying migrations and show the message.
    """

    def __init__(self, statement: str, reason: str) -> None:
        self.statement = statement
        self.reason = reason
        super().__init__(f"cannot compile `{statement}`: {reason}")


def first_line(sql: str) -> str:
    """The first non-comment, non-blank line of ``sql`` (for error messages)."""
    for line in sql.splitlines():
        text = line.strip()
        if text and not text.startswith("--"):
            return text[:120]
    return sql.strip()[:120]
