from __future__ import annotations

import time

import pytest

from servers.outcome import Category, Status
from servers.transports.base import OutgoingMessage, open_transport, probe
from servers.transports.sendgrid import MESSAGE_ID_ARG, SendGridTransport
from tests.support.sendgrid_server import FakeSendGrid, Reply, sendgrid_api, sendgrid_config  # noqa: F401


def structured_message(**changes: object) -> OutgoingMessage:
    fields: dict[str, object] = {
        "message_id": "msg-42",
        "envelope_from": "bounces@mailops.test",
        "recipient": "ana@example.test",
        "from_email": "news@mailops.test",
        "from_name": "Mailops News",
        "reply_to": "support@mailops.test",
        "subject": "Hello Ana",
        "html": "<p>Hello Ana</p>",
        "text": "Hello Ana",
        "headers": {
            "List-Unsubscribe": "<https://mailops.test/u/tok>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "custom_args": {"campaign_id": "7"},
    }
    fields.update(changes)
    return OutgoingMessage(**fields)  # type: ignore[arg-type]


def send(api: FakeSendGrid, message: OutgoingMessage, **config_changes: object):
    with SendGridTransport(sendgrid_config(api, **config_changes)) as transport:
        return transport.send(message)


def test_a_202_is_accepted_and_the_posted_json_is_exactly_the_message(sendgrid_api: FakeSendGrid) -> None:  # noqa: F811
    outcome = send(sendgrid_api, structured_message())

    assert (outcome.status, outcome.category, outcome.code) == (Status.ACCEPTED, Category.NONE, 202)
    assert "fake-sg-000001" in outcome.text
    [request] = sendgrid_api.requests
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    assert request.headers["Authorization"] == f"Bearer {sendgrid_api.api_key}"
    assert request.json == {
        "from": {"email": "news@mailops.test", "name": "Mailops News"},
        "subject": "Hello Ana",
        "personalizations": [{"to": [{"email": "ana@example.test"}]}],
        "content": [
            {"type": "text/plain", "value": "Hello Ana"},
            {"type": "text/html", "value": "<p>Hello Ana</p>"},
        ],
        "headers": {
            "List-Unsubscribe": "<https://mailops.test/u/tok>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "custom_args": {"campaign_id": "7", MESSAGE_ID_ARG: "msg-42"},
        "reply_to": {"email": "support@mailops.test"},
    }


def test_missing_fields_are_read_from_the_rendered_message(sendgrid_api: FakeSendGrid) -> None:  # noqa: F811
    data = (
        b"From: Mailops News <news@mailops.test>\r\n"
        b"To: ana@example.test\r\n"
        b"Subject: =?utf-8?q?Ol=C3=A1_Ana?=\r\n"
        b"Message-ID: <msg-43@mailops.test>\r\n"
        b"List-Unsubscribe: <https://mailops.test/u/tok>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="b"\r\n'
        b"\r\n"
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain body\r\n"
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>HTML body</p>\r\n"
        b"--b--\r\n"
    )
    message = OutgoingMessage(
        message_id="msg-43", envelope_from="bounces@mailops.test", recipient="ana@example.test", data=data
    )

    outcome = send(sendgrid_api, message)

    assert outcome.status is Status.ACCEPTED
    body = sendgrid_api.requests[0].json
    assert body["from"] == {"email": "news@mailops.test", "name": "Mailops News"}
    assert body["subject"] == "Olá Ana"
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["content"][0]["value"].strip() == "Plain body"
    assert body["content"][1]["value"].strip() == "<p>HTML body</p>"
    # Headers SendGrid sets itself stay out; the rest travel.
    assert body["headers"] == {"List-Unsubscribe": "<https://mailops.test/u/tok>"}
    assert body["custom_args"] == {MESSAGE_ID_ARG: "msg-43"}


def test_a_429_is_a_server_failure_that_says_when_the_limit_resets(sendgrid_api: FakeSendGrid) -> None:  # noqa: F811
    reset = int(time.time()) + 60
    sendgrid_api.queue(
        Reply(429, {"errors": [{"field": None, "message": "too many requests"}]}, {"X-RateLimit-Reset": str(reset)})
    )

    outcome = send(sendgrid_api, structured_message())

    assert (outcome.status, outcome.category, outcome.code) == (Status.DEFERRED, Category.SERVER, 429)
    # The message was not judged: it stops the batch and goes back to the queue.
    assert outcome.is_failover
    assert outcome.retry_after is not None
    assert 55 <= outcome.retry_after <= 60
    assert "too many requests" in outcome.text


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_is_a_server_failure(sendgrid_api: FakeSendGrid, status: int) -> None:  # noqa: F811
    sendgrid_api.queue(Reply(status, {"errors": [{"field": None, "message": "access forbidden"}]}))

    outcome = send(sendgrid_api, structured_message())

    assert (outcome.status, outcome.category, outcome.code) == (Status.DEFERRED, Category.SERVER, status)
    assert outcome.is_failover


def test_a_wrong_key_is_refused_by_the_api_as_a_server_failure(sendgrid_api: FakeSendGrid) -> None:  # noqa: F811
    outcome = send(sendgrid_api, structured_message(), api_key="SG.wrong")

    assert (outcome.category, outcome.code) == (Category.SERVER, 401)


def test_a_400_bounces_and_keeps_sendgrids_error_text(sendgrid_api: FakeSendGrid) -> None:  # noqa: F811
    sendgrid_api.queue(
        Reply(
            400,
            {
                "errors": [
                    {
                        "message": "Does not contain a valid address.",
                        "field": "personalizations.0.to.0.email",
                        "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html",
                    }
                ]
            },
        )
    )

    outcome = send(sendgrid_api, structured_message(recipient="not-an-address"))

    assert (outcome.status, outcome.category, outcome.code) == (Status.BOUNCED, Category.PERMANENT, 400)
    assert outcome.text == "personalizations.0.to.0.email: Does not contain a valid address."


def test_a_500_is_deferred(sendgrid_api: FakeSendGrid) -> None:  # noqa: F811
    sendgrid_api.queue(Reply(500, "Internal Server Error"))

    outcome = send(sendgrid_api, structured_message())

    assert (outcome.status, outcome.code) == (Status.DEFERRED, 500)
    assert outcome.text == "Internal Server Error"


def test_an_unreachable_api_is_a_server_failure(sendgrid_api: FakeSendGrid) -> None:  # noqa: F811
    config = sendgrid_config(sendgrid_api)
    sendgrid_api.stop()

    with SendGridTransport(config) as transport:
        outcome = transport.send(structured_message())

    assert (outcome.status, outcome.category, outcome.code) == (Status.DEFERRED, Category.SERVER, None)
    assert outcome.text.startswith("connect failed")


def test_a_response_lost_after_the_request_went_out_is_unknown(sendgrid_api: FakeSendGrid) -> None:  # noqa: F811
    sendgrid_api.queue(Reply(drop=True))

    outcome = send(sendgrid_api, structured_message())

    assert (outcome.status, outcome.category) == (Status.UNKNOWN, Category.UNKNOWN)
    assert len(sendgrid_api.sends()) == 1


def test_without_an_api_key_nothing_is_sent(sendgrid_api: FakeSendGrid) -> None:  # noqa: F811
    with open_transport(sendgrid_config(sendgrid_api, api_key="")) as transport:
        failure = transport.open()
        outcome = transport.send(structured_message())

    assert failure is not None and failure.category is Category.SERVER
    assert outcome.category is Category.SERVER
    assert sendgrid_api.requests == []


def test_the_probe_passes_with_a_valid_key(sendgrid_api: FakeSendGrid) -> None:  # noqa: F811
    result = probe(sendgrid_config(sendgrid_api))

    assert (result.ok, result.stage_failed, result.error) == (True, "", "")
    [request] = sendgrid_api.requests
    assert (request.method, request.path) == ("GET", "/v3/scopes")


def test_the_probe_fails_at_auth_with_a_wrong_key(sendgrid_api: FakeSendGrid) -> None:  # noqa: F811
    result = probe(sendgrid_config(sendgrid_api, api_key="SG.wrong"))

    assert (result.ok, result.stage_failed) == (False, "auth")
    assert "401" in result.error


def test_the_probe_fails_at_connect_when_the_api_is_unreachable(sendgrid_api: FakeSendGrid) -> None:  # noqa: F811
    config = sendgrid_config(sendgrid_api)
    sendgrid_api.stop()

    result = probe(config)

    assert (result.ok, result.stage_failed) == (False, "connect")
