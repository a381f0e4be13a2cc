from __future__ import annotations

import pytest

from servers.outcome import Category, Status
from servers.relay import Fault, Relay
from servers.transports.base import OutgoingMessage, TransportConfig, open_transport, probe
from servers.transports.smtp import SmtpTransport, encode_payload
from tests.support.relays import relay_factory, smtp_config  # noqa: F401


@pytest.fixture(params=[True, False], ids=["pipelining", "one-by-one"])
def relay(request: pytest.FixtureRequest, relay_factory) -> Relay:  # noqa: F811
    """Every plain-relay test runs against a relay offering PIPELINING and one that does not."""
    return relay_factory(pipelining=request.param)


def message(n: int = 1, *, recipient: str | None = None, body: bytes | None = None) -> OutgoingMessage:
    data = body if body is not None else (
        f"From: Sender <sender@mailops.test>\r\nTo: rcpt{n}@example.test\r\n"
        f"Subject: Message {n}\r\nMessage-ID: <m{n}@mailops.test>\r\n\r\nHello number {n}.\r\n"
    ).encode()
    return OutgoingMessage(
        message_id=f"m{n}",
        envelope_from="bounces@mailops.test",
        recipient=recipient or f"rcpt{n}@example.test",
        data=data,
    )


def test_it_sends_many_messages_over_one_connection(relay: Relay) -> None:
    with SmtpTransport(smtp_config(relay)) as transport:
        assert transport.open() is None
        outcomes = [transport.send(message(n)) for n in range(1, 51)]

    assert {o.status for o in outcomes} == {Status.ACCEPTED}
    assert relay.counters["connections"] == 1
    assert [m.rcpt_tos for m in relay.messages] == [(f"rcpt{n}@example.test",) for n in range(1, 51)]
    assert relay.messages[0].mail_from == "bounces@mailops.test"
    assert relay.messages[6].data == message(7).data
    # Completed transactions need no RSET.
    assert relay.counters["rsets"] == 0
    # MAIL and RCPT replies are read together only when the relay offers PIPELINING.
    assert relay.counters["pipelined"] == (100 if relay.pipelining else 0)


def test_the_body_arrives_byte_for_byte_with_dots_and_eight_bit_text(relay: Relay) -> None:
    body = "Subject: Ünïcode\r\n\r\n.leading dot\r\n..two dots\r\nCafé ☕\r\n".encode()
    with SmtpTransport(smtp_config(relay)) as transport:
        outcome = transport.send(message(body=body))

    assert outcome.status is Status.ACCEPTED
    assert relay.messages[0].data == body


def test_bare_newlines_become_crlf_and_leading_dots_are_stuffed() -> None:
    assert encode_payload(b"a\n.b\rc") == b"a\r\n..b\r\nc\r\n.\r\n"


def test_it_sends_over_starttls_with_auth(relay_factory) -> None:  # noqa: F811
    relay = relay_factory(security="starttls", require_starttls=True, username="mailer", password="s3cret")
    config = smtp_config(relay, security="starttls", username="mailer", password="s3cret")

    with open_transport(config) as transport:
        assert transport.open() is None
        outcome = transport.send(message())

    assert outcome.status is Status.ACCEPTED
    assert relay.counters["tls"] == 1
    assert relay.counters["auth_ok"] == 1
    assert len(relay.messages) == 1


def test_it_sends_over_implicit_tls_with_auth(relay_factory) -> None:  # noqa: F811
    relay = relay_factory(security="tls", username="mailer", password="s3cret")
    config = smtp_config(relay, security="tls", username="mailer", password="s3cret")

    with open_transport(config) as transport:
        outcome = transport.send(message())

    assert outcome.status is Status.ACCEPTED
    assert len(relay.messages) == 1


def test_a_wrong_password_is_a_server_failure_at_auth(relay_factory) -> None:  # noqa: F811
    relay = relay_factory(security="starttls", username="mailer", password="s3cret")
    config = smtp_config(relay, security="starttls", username="mailer", password="wrong")

    with SmtpTransport(config) as transport:
        failure = transport.open()
        stage = transport.failed_stage
        send_outcome = transport.send(message())

    assert failure is not None
    assert (failure.status, failure.category) == (Status.DEFERRED, Category.SERVER)
    assert (failure.code, failure.enhanced) == (535, "5.7.8")
    assert failure.text.startswith("auth failed")
    assert stage == "auth"
    # send() opens by itself and reports the same failure; nothing was delivered.
    assert send_outcome.category is Category.SERVER
    assert relay.messages == []


def test_a_refused_connection_is_a_server_failure_at_connect(relay: Relay) -> None:
    relay.set_down()

    with SmtpTransport(smtp_config(relay)) as transport:
        failure = transport.open()
        stage = transport.failed_stage

    assert failure is not None
    assert (failure.status, failure.category, failure.code) == (Status.DEFERRED, Category.SERVER, None)
    assert stage == "connect"
    assert "connect failed" in failure.text


def test_a_421_greeting_is_a_server_failure_at_connect(relay: Relay) -> None:
    relay.set_greeting("421 4.3.2 Service not available, closing transmission channel")

    with SmtpTransport(smtp_config(relay)) as transport:
        failure = transport.open()

    assert failure is not None
    assert (failure.status, failure.category, failure.code) == (Status.DEFERRED, Category.SERVER, 421)


def test_it_never_falls_back_to_clear_text_when_starttls_is_missing(relay: Relay) -> None:
    with SmtpTransport(smtp_config(relay, security="starttls")) as transport:
        failure = transport.open()
        stage = transport.failed_stage

    assert failure is not None and failure.category is Category.SERVER
    assert stage == "tls"
    assert "STARTTLS" in failure.text


def test_an_unverifiable_certificate_is_a_server_failure_at_tls(relay_factory) -> None:  # noqa: F811
    relay = relay_factory(security="tls")

    with SmtpTransport(smtp_config(relay, security="tls", verify_tls=True)) as transport:
        failure = transport.open()
        stage = transport.failed_stage

    assert failure is not None and failure.category is Category.SERVER
    assert stage == "tls"
    assert "certificate" in failure.text.lower()


def test_a_connection_dropped_before_data_is_retried_once_and_delivered_once(relay: Relay) -> None:
    relay.queue_faults(Fault.DROP)

    with SmtpTransport(smtp_config(relay)) as transport:
        outcome = transport.send(message())

    assert outcome.status is Status.ACCEPTED
    assert relay.counters["drops"] == 1
    assert relay.counters["connections"] == 2
    assert len(relay.messages) == 1


def test_a_second_drop_defers_the_message_without_a_third_try(relay: Relay) -> None:
    relay.queue_faults(Fault.DROP, Fault.DROP)

    with SmtpTransport(smtp_config(relay)) as transport:
        outcome = transport.send(message())
        after = transport.send(message(2))

    assert (outcome.status, outcome.category) == (Status.DEFERRED, Category.SERVER)
    assert "MAIL" in outcome.text
    assert relay.counters["connections"] == 3  # two for the first message, one for the next
    assert after.status is Status.ACCEPTED
    assert [m.rcpt_tos for m in relay.messages] == [("rcpt2@example.test",)]


def test_a_reply_lost_after_data_is_unknown_and_never_resent(relay: Relay) -> None:
    relay.queue_faults(Fault.DROP_AFTER_DATA)

    with SmtpTransport(smtp_config(relay)) as transport:
        lost = transport.send(message(1))
        following = transport.send(message(2))

    assert (lost.status, lost.category, lost.code) == (Status.UNKNOWN, Category.UNKNOWN, None)
    assert following.status is Status.ACCEPTED
    # The relay kept the first message once; the transport did not send it again.
    assert [m.rcpt_tos for m in relay.messages] == [("rcpt1@example.test",), ("rcpt2@example.test",)]
    assert relay.counters["connections"] == 2


def test_a_final_reply_slower_than_the_data_timeout_is_unknown(relay: Relay) -> None:
    relay.set_faults(slow=1.0, slow_delay=3.0, slow_on={"data"})

    with SmtpTransport(smtp_config(relay, data_timeout=1.0)) as transport:
        outcome = transport.send(message())

    assert outcome.status is Status.UNKNOWN
    assert "within 1s" in outcome.text
    assert relay.counters["connections"] == 1


def test_a_reply_slower_than_the_command_timeout_defers_and_the_next_message_reconnects(relay: Relay) -> None:
    relay.set_faults(slow=1.0, slow_delay=3.0, slow_on={"rcpt"})

    with SmtpTransport(smtp_config(relay, command_timeout=1.0)) as transport:
        slow = transport.send(message(1))
        relay.set_faults(slow=0.0)
        following = transport.send(message(2))

    assert (slow.status, slow.category) == (Status.DEFERRED, Category.SERVER)
    assert "RCPT" in slow.text
    assert following.status is Status.ACCEPTED
    assert [m.rcpt_tos for m in relay.messages] == [("rcpt2@example.test",)]
    assert relay.counters["connections"] == 2


def test_a_4xx_is_deferred_and_the_connection_goes_on_after_an_rset(relay: Relay) -> None:
    relay.set_faults(fail_4xx=1.0, deferrals=("451 4.7.1 Greylisted, please try again later",))

    with SmtpTransport(smtp_config(relay)) as transport:
        deferred = transport.send(message(1))
        relay.set_faults(fail_4xx=0.0)
        accepted = transport.send(message(2))

    assert (deferred.status, deferred.code, deferred.enhanced) == (Status.DEFERRED, 451, "4.7.1")
    assert accepted.status is Status.ACCEPTED
    assert relay.counters["rsets"] == 1
    assert relay.counters["connections"] == 1


def test_550_5_1_1_is_a_hard_bounce(relay: Relay) -> None:
    with SmtpTransport(smtp_config(relay)) as transport:
        outcome = transport.send(message(recipient="bounce-7@example.test"))

    assert (outcome.status, outcome.category) == (Status.BOUNCED, Category.HARD)
    assert (outcome.code, outcome.enhanced) == (550, "5.1.1")
    assert relay.messages == []


def test_a_rejection_after_data_keeps_the_servers_reason(relay: Relay) -> None:
    relay.set_faults(fail_5xx=1.0, fail_at="data", rejections=("550 5.7.1 Message rejected due to local policy",))

    with SmtpTransport(smtp_config(relay)) as transport:
        outcome = transport.send(message())

    assert (outcome.status, outcome.category, outcome.code) == (Status.BOUNCED, Category.POLICY, 550)
    assert "local policy" in outcome.text


def test_a_connection_the_server_closed_while_idle_is_reopened(relay: Relay) -> None:
    with SmtpTransport(smtp_config(relay)) as transport:
        first = transport.send(message(1))
        relay.set_down()  # cuts the open session too
        relay.set_down(False)
        second = transport.send(message(2))

    assert first.status is Status.ACCEPTED and second.status is Status.ACCEPTED
    assert len(relay.messages) == 2


def test_it_binds_the_source_address_and_says_its_helo_name(relay: Relay) -> None:
    config = smtp_config(relay, source_address="127.0.0.2", helo_name="egress-2.mailops.test")

    with SmtpTransport(config) as transport:
        outcome = transport.send(message())

    assert outcome.status is Status.ACCEPTED
    assert relay.peers == ["127.0.0.2"]
    assert relay.helo_names == ["egress-2.mailops.test"]


def test_a_closed_transport_refuses_to_send(relay: Relay) -> None:
    transport = SmtpTransport(smtp_config(relay))
    transport.send(message())
    transport.close()
    transport.close()

    with pytest.raises(RuntimeError, match="closed"):
        transport.send(message(2))


def test_the_config_keeps_secrets_out_of_its_repr() -> None:
    config = TransportConfig(host="127.0.0.1", port=2525, password="hunter2", api_key="SG.secret")

    assert "hunter2" not in repr(config)
    assert "SG.secret" not in repr(config)


def test_the_probe_passes_every_stage_on_a_healthy_relay(relay_factory) -> None:  # noqa: F811
    relay = relay_factory(security="starttls", username="mailer", password="s3cret")

    result = probe(smtp_config(relay, username="mailer", password="s3cret"))

    assert (result.ok, result.stage_failed, result.error) == (True, "", "")
    assert result.latency_ms > 0
    assert relay.counters["auth_ok"] == 1
    assert relay.messages == []


@pytest.mark.parametrize(
    ("relay_options", "config_changes", "stage"),
    [
        ({}, {"security": "none", "port": None}, "connect"),
        ({}, {"security": "starttls"}, "tls"),
        ({"security": "starttls", "username": "mailer", "password": "s3cret"}, {"username": "mailer"}, "auth"),
        ({"greeting": "554 5.3.2 Service busy"}, {}, "connect"),
    ],
)
def test_the_probe_names_the_stage_that_failed(relay_factory, relay_options, config_changes, stage) -> None:  # noqa: F811
    relay = relay_factory(**relay_options)
    if config_changes.get("port", 0) is None:
        relay.set_down()
        config_changes = {**config_changes, "port": relay.port}

    result = probe(smtp_config(relay, **config_changes))

    assert result.ok is False
    assert result.stage_failed == stage
    assert result.error


def test_the_probe_fails_at_noop_when_the_server_stalls(relay: Relay) -> None:
    relay.set_faults(slow=1.0, slow_delay=3.0, slow_on={"noop"})

    result = probe(smtp_config(relay, command_timeout=1.0))

    assert (result.ok, result.stage_failed) == (False, "noop")


def test_a_421_mid_session_defers_and_the_next_message_gets_a_new_connection(relay: Relay) -> None:
    relay.set_override("busy@example.test", "421 4.7.0 Too many connections, closing transmission channel")

    with SmtpTransport(smtp_config(relay)) as transport:
        closing = transport.send(message(recipient="busy@example.test"))
        following = transport.send(message(2))

    assert (closing.status, closing.code, closing.enhanced) == (Status.DEFERRED, 421, "4.7.0")
    assert following.status is Status.ACCEPTED
    assert relay.counters["connections"] == 2
    assert [m.rcpt_tos for m in relay.messages] == [("rcpt2@example.test",)]


def test_an_address_needing_smtputf8_bounces_when_the_server_lacks_it(relay: Relay) -> None:
    with SmtpTransport(smtp_config(relay)) as transport:
        outcome = transport.send(message(recipient="josé@example.test"))
        following = transport.send(message(2))

    assert (outcome.status, outcome.category) == (Status.BOUNCED, Category.PERMANENT)
    assert "SMTPUTF8" in outcome.text
    assert following.status is Status.ACCEPTED
    assert relay.counters["connections"] == 1


def test_it_says_how_to_call_it_from_async_code(relay: Relay) -> None:
    import asyncio

    async def misuse() -> None:
        with SmtpTransport(smtp_config(relay)) as transport:
            transport.send(message())

    with pytest.raises(RuntimeError, match="sync_to_async"):
        asyncio.run(misuse())
