"""A cap on request bodies: 413 before a large body is read, not after FastAPI has parsed it.

FastAPI reads and parses a whole body (about four times its size in memory) before any limit
in the route applies, such as the batch size; neither Starlette nor uvicorn caps a body. So
this ASGI middleware, written here for that reason, refuses a declared `Content-Length` over the
limit at once, and stops reading a streamed (chunked) body as soon as it passes the limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import HTTPException


class BodyLimit:
    """Pure ASGI (no per-request wrapper objects): it only looks at the headers and counts bytes."""

    def __init__(self, app, max_bytes: int, on_refused: Callable[[], None] = lambda: None):
        self.app, self.max_bytes, self.on_refused = app, max_bytes, on_refused

    def _message(self) -> str:
        return f"the request body is over serving.max_body_bytes ({self.max_bytes:,} bytes); send smaller batches"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised while FastAPI reads the body: it answers an HTTPException as it is (a 413).
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted_receive, send)

    async def _refuse(self, send) -> None:
        self.on_refused()  # (a streamed body's 413 is counted by the server's error handler)
        body = json.dumps({"detail": self._message()}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]  # fmt: skip
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
