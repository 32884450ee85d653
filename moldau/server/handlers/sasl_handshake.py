"""SaslHandshake reaching the request dispatcher: on a PLAINTEXT or SSL listener, or after
the connection authenticated (SASL listeners hand the handshake itself to
`security/authenticator.py`). Kafka answers ILLEGAL_SASL_STATE there too."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.SASL_HANDSHAKE, header.api_version)
    return build(t.SaslHandshakeResponse, error_code=ErrorCode.illegal_sasl_state, mechanisms=())
