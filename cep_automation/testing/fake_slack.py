"""A fake Slack incoming webhook: ``POST <hook path>`` with a JSON ``{"text", ...}``, answered ``ok``.

Point ``CEP_ALERT_WEBHOOK_URL`` at :meth:`FakeSlack.hook_url`. Slack answers errors with a short
plain-text word and an HTTP status; :meth:`FakeSlack.fail_with` does the same.
"""

from __future__ import annotations

from typing import Any

from cep_automation.testing.fakes import FakeServer, Recorded, Reply

# Slack's documented webhook errors: the plain-text body and its status.
ERRORS = {
    "invalid_payload": 400,
    "no_text": 400,
    "invalid_token": 403,
    "action_prohibited": 403,
    "no_service": 404,
    "channel_is_archived": 410,
    "rate_limited": 429,
    "rollup_error": 500,
}
HOOK_PATH = "/services/T0000FAKE/B0000FAKE/fakeWebhookSecret123"
TEXT = {"Content-Type": "text/html"}


class FakeSlack(FakeServer):
    """Slack incoming webhooks on 127.0.0.1; :attr:`messages` holds each accepted JSON payload."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []

    def hook_url(self, path: str = HOOK_PATH) -> str:
        """A webhook URL on this server (its path is the secret part, as at Slack)."""
        return self.url + path

    def fail_with(self, error: str, *, retry_after: str | None = None, times: int = 1) -> None:
        """Answer the next ``times`` posts with one of :data:`ERRORS`."""
        headers = dict(TEXT, **({"Retry-After": retry_after} if retry_after else {}))
        self.fail_next(ERRORS[error], error.encode(), headers, times=times)

    def handle(self, request: Recorded) -> Reply:
        if request.method != "POST" or not request.path.startswith("/services/"):
            return Reply(404, b"no_service", TEXT)
        try:
            payload = request.json
        except ValueError:
            return Reply(400, b"invalid_payload", TEXT)
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            return Reply(400, b"no_text", TEXT)
        self.messages.append(payload)
        return Reply(200, b"ok", TEXT)
