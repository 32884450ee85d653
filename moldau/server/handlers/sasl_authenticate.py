"""SaslAuthenticate reaching the request dispatcher: no SASL exchange is in progress on
this connection (see sasl_handshake.py), so Kafka's ILLEGAL_SASL_STATE."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.SASL_AUTHENTICATE, header.api_version)
    return build(t.SaslAuthenticateResponse, error_code=ErrorCode.illegal_sasl_state,
                 error_message="SaslAuthenticate request received after successful authentication",
                 auth_bytes=b"")
