"""Bearer-token authentication. Only SHA-256 hashes of the (high-entropy, random) tokens are stored."""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import Request

from gs_engine.errors import Unauthorized


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def require_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "this API needs a bearer token",
            fix="send 'Authorization: Bearer TOKEN'; the admin token is in GSE_HOME/admin.token",
        )
    store = request.app.state.engine.store
    record = await asyncio.to_thread(store.find_token, hash_token(token.strip()))
    if record is None:
        raise Unauthorized("the bearer token is not valid", fix="use the token from GSE_HOME/admin.token")
    return str(record.name)
