"""Databento Historical API stub (PROVIDERS.md §3): Basic auth with the key as username."""

from __future__ import annotations

import base64

from tests.stubs.base import StubRequest, StubResponse, StubServer

GOOD_KEY = "db-StubKey0123456789abcdefghijklm"
DATASETS = ["GLBX.MDP3", "XNAS.ITCH", "OPRA.PILLAR"]


class DatabentoStub(StubServer):
    good_env = {"DATABENTO_API_KEY": GOOD_KEY}

    def _key(self, request: StubRequest) -> str:
        auth = request.header("authorization")
        if not auth.startswith("Basic "):
            return ""
        user, _, _ = base64.b64decode(auth[6:]).decode().partition(":")
        return user

    def handle(self, request: StubRequest) -> StubResponse:
        if self.mode == "rate_limit":
            return StubResponse(429, {"detail": "Too many requests."}, {"Retry-After": "1"})
        if self.mode == "bad_key" or self._key(request) != GOOD_KEY:
            return StubResponse(401, {"detail": {"case": "auth_invalid_api_key", "message": "Invalid API key."}})
        if request.path == "/v0/metadata.list_datasets" and request.method == "GET":
            if self.mode == "malformed":
                return StubResponse(200, "<html>gateway maintenance</html>")
            return StubResponse(200, DATASETS)
        return StubResponse(404, {"detail": f"Not found: {request.path}"})
