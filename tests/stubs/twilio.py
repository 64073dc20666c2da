"""Twilio 2010-04-01 REST stub (PROVIDERS.md §6): Basic auth (AccountSid, AuthToken), the Account
resource and Messages.json (form-encoded, answers 201).

Attributes:
    account_status   what the Account resource says (active, suspended, closed)
    account_type     Trial or Full
    invalid_numbers  `To` numbers answered with 400 / error 21211
Without the `.json` suffix the stub answers XML, as the real 2010 API does.
"""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

from tests.stubs.base import StubRequest, StubResponse, StubServer

GOOD_SID = "AC0123456789abcdef0123456789abcdef"
GOOD_TOKEN = "tw-StubToken-0123456789abcdef01234"
FROM_NUMBER = "+15005550006"
DATE = "Thu, 09 Oct 2025 14:48:08 +0000"


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class TwilioStub(StubServer):
    good_env = {"TWILIO_ACCOUNT_SID": GOOD_SID, "TWILIO_AUTH_TOKEN": GOOD_TOKEN, "TWILIO_FROM_NUMBER": FROM_NUMBER}

    def __init__(self) -> None:
        super().__init__()
        self.account_status = "active"
        self.account_type = "Full"
        self.invalid_numbers: set[str] = {"+15005550001"}

    def _credentials(self, request: StubRequest) -> tuple[str, str]:
        auth = request.header("authorization")
        if not auth.startswith("Basic "):
            return "", ""
        user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        return user, password

    def handle(self, request: StubRequest) -> StubResponse:
        if self.mode == "rate_limit":
            return StubResponse(429, _error(429, 20429, "Too Many Requests"), {"Retry-After": "1"})
        if self.mode == "bad_key" or self._credentials(request) != (GOOD_SID, GOOD_TOKEN):
            return StubResponse(401, _error(401, 20003, "Authenticate"))
        match = re.fullmatch(r"/2010-04-01/Accounts/([^/.]+)(/Messages)?(\.json)?", request.path)
        if not match or match.group(1) != GOOD_SID:
            return StubResponse(404, _error(404, 20404, f"The requested resource {request.path} was not found"))
        if match.group(3) is None or self.mode == "malformed":
            return StubResponse(
                200, "<?xml version='1.0' encoding='UTF-8'?>\n<TwilioResponse><Account/></TwilioResponse>"
            )
        if match.group(2) is None and request.method == "GET":
            return StubResponse(200, self._account())
        if match.group(2) is not None and request.method == "POST":
            return self._create_message(request)
        return StubResponse(405, _error(405, 20004, "Method not allowed"))

    def _account(self) -> dict[str, Any]:
        return {
            "sid": GOOD_SID,
            "owner_account_sid": GOOD_SID,
            "friendly_name": "TradeOps stub",
            "status": self.account_status,
            "type": self.account_type,
            # The real Account resource includes the auth token: clients must not pass it on.
            "auth_token": GOOD_TOKEN,
            "date_created": DATE,
            "date_updated": DATE,
            "uri": f"/2010-04-01/Accounts/{GOOD_SID}.json",
            "subresource_uris": {"messages": f"/2010-04-01/Accounts/{GOOD_SID}/Messages.json"},
        }

    def _create_message(self, request: StubRequest) -> StubResponse:
        form = (
            {k: v[0] for k, v in request.form().items()}
            if request.header("content-type").startswith("application/x-www-form-urlencoded")
            else {}
        )
        to = form.get("To")
        if not to:
            return StubResponse(400, _error(400, 21604, "A 'To' phone number is required."))
        if to in self.invalid_numbers:
            return StubResponse(400, _error(400, 21211, f"Invalid 'To' Phone Number: {to}"))
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return StubResponse(400, _error(400, 21603, "A 'From' phone number is required."))
        if not form.get("Body"):
            return StubResponse(400, _error(400, 21602, "Message body is required."))
        sid = "SM" + uuid.uuid4().hex
        return StubResponse(
            201,
            {
                "sid": sid,
                "account_sid": GOOD_SID,
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "to": to,
                "from": form.get("From"),
                "body": form["Body"],
                "status": "accepted" if form.get("MessagingServiceSid") else "queued",
                "num_segments": "1",
                "num_media": "0",
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "price": None,
                "price_unit": "USD",
                "api_version": "2010-04-01",
                "date_created": DATE,
                "date_updated": DATE,
                "date_sent": None,
                "uri": f"/2010-04-01/Accounts/{GOOD_SID}/Messages/{sid}.json",
            },
        )
