"""Bearer-token authentication. Only SHA-256 hashes of the (high-entropy, random) tokens are stored."""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gs_engine.errors import Unauthorized


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="adminToken",
    description="The token `gse up` writes to GSE_HOME/admin.token (mode 0600).",
)


async def require_token(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> str:
    token = credentials.credentials if credentials is not None else ""
    if credentials is None or credentials.scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "this API needs a bearer token",
            fix="send 'Authorization: Bearer TOKEN'; the admin token is in GSE_HOME/admin.token",
        )
    store = request.app.state.engine.store
    record = await asyncio.to_thread(store.find_token, hash_token(token.strip()))
    if record is None:
        raise Unauthorized("the bearer token is not valid", fix="use the token from GSE_HOME/admin.token")
    return str(record.name)
