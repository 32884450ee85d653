"""Errors the broker's admin operations raise; handlers answer them with the code."""

from __future__ import annotations

from moldau.protocol.errors import ErrorCode


class TopicError(Exception):
    """A topic operation refused with a Kafka error code and a message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
