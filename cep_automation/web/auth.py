"""The bearer token (``CEP_API_TOKEN``) in front of every route but ``/health``, ``/ready`` and the webhooks.

The API takes ``Authorization: Bearer <token>``; the dashboard also takes HTTP basic auth with the
token as password (any user name), so a browser on a laptop or a phone can log in. Without a
token configured everything protected answers 503: an unset secret must close the door, not open it.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from cep_automation.web.errors import json_error

# The webhooks prove themselves: Meta's and WhatsApp's by signature, Mailchimp's by the secret in its URL.
PUBLIC_PATHS = frozenset({"/health", "/ready", "/webhooks/meta/leads", "/webhooks/whatsapp", "/webhooks/mailchimp"})
DASHBOARD_PREFIX = "/admin"
REALM = 'Basic realm="cep-automation dashboard", charset="UTF-8"'


def presented_token(authorization: str, allow_basic: bool) -> str | None:
    """The token in an ``Authorization`` header: the bearer token, or the basic-auth password."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic" and allow_basic:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing says nothing about the token."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class TokenAuth:
    """ASGI middleware checking the token on every protected path.

    Parameters:
      app: the application to protect.
      token: ``CEP_API_TOKEN``; None or empty refuses every protected request with 503.
    """

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        dashboard = scope["path"] == DASHBOARD_PREFIX or scope["path"].startswith(DASHBOARD_PREFIX + "/")
        if self.token is None:
            response = json_error(503, "CEP_API_TOKEN is not set: the API and the dashboard stay closed until it is")
        elif token_matches(presented_token(Headers(scope=scope).get("authorization", ""), dashboard), self.token):
            await self.app(scope, receive, send)
            return
        else:
            challenge = REALM if dashboard else 'Bearer realm="cep-automation"'
            response = json_error(401, "missing or wrong token: send Authorization: Bearer <CEP_API_TOKEN>",
                                  headers={"WWW-Authenticate": challenge})
        await response(scope, receive, send)
