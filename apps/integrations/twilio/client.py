"""Twilio Programmable Messaging over the 2010-04-01 REST API (PROVIDERS.md §6).

Auth is HTTP Basic (AccountSid, AuthToken). Paths end in `.json`: without it the 2010 API answers
XML. Verify reads the account itself and requires `status == "active"`. Sending is a form-encoded
POST to Messages.json.

The Account resource Twilio returns includes the account's `auth_token`: nothing but the facts
named in `verify()` is taken from it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from apps.integrations.base import ProviderClient, require
from apps.integrations.errors import IntegrationError
from apps.integrations.http import Classifier

E164 = re.compile(r"\+[1-9][0-9]{1,14}")
# A Messaging Service sid in TWILIO_FROM_NUMBER is sent as MessagingServiceSid instead of From
# (Twilio accepts either; PROVIDERS.md §6).
MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
MAX_BODY_CHARS = 1600  # Twilio's documented limit for Body
_MORE_INFO = re.compile(r"https://(www\.)?twilio\.com/docs/errors/[0-9]{4,6}")

ACCOUNT_STATUS_FIX = {
    "suspended": "The Twilio account is suspended (often unpaid balance or a compliance hold): resolve it in the "
    "Twilio Console (Billing / account status), then Verify again.",
    "closed": "The Twilio account is closed and cannot send: use the credentials of an active account "
    "(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN), then Verify again.",
}


class TwilioRequestInvalid(IntegrationError):
    """The message was refused before any request: Twilio would reject it, or it would go astray."""

    def __init__(self, message: str, *, field: str, suggested_fix: str) -> None:
        super().__init__(
            message,
            error_code="INTEGRATION_REQUEST_REJECTED",
            provider="twilio",
            suggested_fix=suggested_fix,
            status_code=400,
            extra={"fields": {field: [message]}},
        )


def _classifier(operation: str) -> Classifier:
    """Twilio's error body is `{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com
    /docs/errors/20003","status":401}` [P]. 401/403/429 (code 20429, with Retry-After) and 5xx keep
    the generic rules; other 4xx get Twilio's code and its docs link. On verify, a 2xx account whose
    status is not active fails here, so its usage event records the failure."""

    def classify(response: Any, body: Any) -> IntegrationError | None:
        status = response.status_code
        if not isinstance(body, dict):
            return None
        if 200 <= status < 300:
            account_status = body.get("status")
            if operation == "verify" and isinstance(account_status, str) and account_status != "active":
                return IntegrationError(
                    f"The Twilio account is {account_status[:20]}, not active: it cannot send messages.",
                    error_code="INTEGRATION_PERMISSION_DENIED",
                    provider="twilio",
                    suggested_fix=ACCOUNT_STATUS_FIX.get(
                        account_status,
                        "Check the account's status in the Twilio Console; only an active account can send.",
                    ),
                    extra={"account_status": account_status[:20]},
                )
            return None
        if status in (401, 403, 423, 429) or status >= 500:
            return None
        code = body.get("code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        said = body.get("message") if isinstance(body.get("message"), str) else ""
        more_info = body.get("more_info")
        link = more_info if isinstance(more_info, str) and _MORE_INFO.fullmatch(more_info) else None
        label = f"{status}, error {code}" if code is not None else str(status)
        return IntegrationError(
            f"Twilio rejected {operation} ({label})" + (f": {said[:200]}" if said else ""),
            error_code="INTEGRATION_REQUEST_REJECTED",
            provider="twilio",
            suggested_fix=(f"See {link} for what Twilio error {code} means and how to fix it." if link else None),
            extra={"twilio_code": code} if code is not None else None,
        )

    return classify


def _account(expected_sid: str) -> Any:
    def validate(body: Any) -> None:
        require(isinstance(body, dict), "expected a JSON Account object")
        require(isinstance(body.get("status"), str), "the account has no status")
        # Compared, never quoted: the sid is one of the credentials.
        require(body.get("sid") == expected_sid, "the answer is not the account that was asked for")

    return validate


def _message(body: Any) -> None:
    require(isinstance(body, dict), "expected a JSON Message object")
    require(isinstance(body.get("sid"), str) and body["sid"] != "", "the message has no sid")
    require(isinstance(body.get("status"), str) and body["status"] != "", "the message has no status")


class TwilioClient(ProviderClient):
    provider = "twilio"

    @property
    def _sid(self) -> str:
        return self.credentials.get("TWILIO_ACCOUNT_SID")

    def _auth(self) -> tuple[str, str]:
        # Basic (AccountSid, AuthToken). An API Key SID/secret pair may work as username/password
        # too [U]; there is no variable for it yet, so the account's own token is used.
        return (self._sid, self.credentials.get("TWILIO_AUTH_TOKEN"))

    def _account_path(self, suffix: str = "") -> str:
        return f"/2010-04-01/Accounts/{quote(self._sid, safe='')}{suffix}.json"

    def verify(self) -> dict[str, Any]:
        body = self.request(
            "verify",
            "GET",
            self._account_path(),
            auth=self._auth(),
            classify=_classifier("verify"),
            validate=_account(self._sid),
        ).body
        facts: dict[str, Any] = {"status": body["status"]}
        if isinstance(body.get("type"), str):
            facts["type"] = body["type"]  # Trial accounts only reach verified numbers
        return facts

    def send_sms(self, to: str, body: str) -> dict[str, str]:
        """Send one SMS from TWILIO_FROM_NUMBER. `to` must be E.164 (+15551234567). Returns the
        Message's sid and its first status (queued/accepted); delivery happens later."""
        if not isinstance(to, str) or not E164.fullmatch(to):
            raise TwilioRequestInvalid(
                f"Not an E.164 phone number: {str(to)[:32]!r}.",
                field="to",
                suggested_fix="Give the number in E.164 form: + then country code and number, no spaces "
                "(e.g. +15551234567).",
            )
        if not isinstance(body, str) or not body.strip():
            raise TwilioRequestInvalid(
                "The message body is empty.", field="body", suggested_fix="Send a non-empty message."
            )
        if len(body) > MAX_BODY_CHARS:
            raise TwilioRequestInvalid(
                f"The message body is {len(body)} characters; Twilio accepts at most {MAX_BODY_CHARS}.",
                field="body",
                suggested_fix=f"Shorten the message to {MAX_BODY_CHARS} characters or fewer.",
            )
        sender = self.credentials.get("TWILIO_FROM_NUMBER").strip()
        form = {"To": to, "Body": body}
        if MESSAGING_SERVICE_SID.fullmatch(sender):
            form["MessagingServiceSid"] = sender
        else:
            form["From"] = sender  # a Twilio number in E.164, or an alphanumeric sender id
        message = self.request(
            "sms.send",
            "POST",
            self._account_path("/Messages"),
            auth=self._auth(),
            data=form,
            classify=_classifier("sms.send"),
            validate=_message,
        ).body
        return {"sid": message["sid"], "status": message["status"]}
