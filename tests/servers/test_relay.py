"""The demo relay, driven by the standard library's smtplib so it is tested on its own."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from pathlib import Path

import pytest

from servers.relay import Fault, Faults, Relay, start_relays
from tests.support.relays import relay, relay_factory  # noqa: F401

BODY = b"Subject: Hi\r\n\r\nHello.\r\n"


def client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def connect(relay: Relay) -> smtplib.SMTP:
    return smtplib.SMTP(relay.host, relay.port, local_hostname="client.test", timeout=5)


def send_one(relay: Relay, rcpt: str = "ana@example.test") -> None:
    with connect(relay) as smtp:
        smtp.sendmail("from@mailops.test", [rcpt], BODY)


def test_it_keeps_each_message_in_memory_and_in_the_maildir(relay: Relay, tmp_path: Path) -> None:
    with connect(relay) as smtp:
        smtp.sendmail("from@mailops.test", ["ana@example.test", "bo@example.test"], BODY)
        smtp.sendmail("from@mailops.test", ["cy@example.test"], BODY)

    assert relay.messages == [
        ("from@mailops.test", ("ana@example.test", "bo@example.test"), BODY),
        ("from@mailops.test", ("cy@example.test",), BODY),
    ]
    assert relay.counters["connections"] == 1
    assert relay.counters["messages"] == 2
    assert relay.maildir is not None
    stored = sorted((relay.maildir / "new").iterdir())
    assert len(stored) == 2
    assert list((relay.maildir / "tmp").iterdir()) == []
    contents = {p.read_bytes() for p in stored}
    assert b"Return-Path: <from@mailops.test>\r\nX-Original-To: cy@example.test\r\n" + BODY in contents


@pytest.mark.parametrize(
    ("rcpt", "code", "enhanced"),
    [
        ("bounce-1@example.test", 550, b"5.1.1"),
        ("defer-1@example.test", 451, b"4.2.0"),
        ("block-1@example.test", 554, b"5.7.1"),
        ("full-1@example.test", 452, b"4.2.2"),
    ],
)
def test_local_parts_force_their_reply(relay: Relay, rcpt: str, code: int, enhanced: bytes) -> None:
    with connect(relay) as smtp, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        smtp.sendmail("from@mailops.test", [rcpt], BODY)

    got_code, text = refused.value.recipients[rcpt]
    assert got_code == code
    assert text.startswith(enhanced)
    assert relay.messages == []


def test_an_explicit_override_wins_for_that_address_only(relay: Relay) -> None:
    relay.set_override("Gone@Example.test", "550 5.1.1 <{address}>: mailbox gone")

    with connect(relay) as smtp:
        refused = smtp.sendmail("from@mailops.test", ["gone@example.test", "ana@example.test"], BODY)

    assert refused == {"gone@example.test": (550, b"5.1.1 <gone@example.test>: mailbox gone")}
    assert relay.messages[0].rcpt_tos == ("ana@example.test",)


def test_an_override_must_be_an_smtp_reply(relay: Relay) -> None:
    with pytest.raises(ValueError, match="3-digit"):
        relay.set_override("a@example.test", "nope")


def test_wrong_credentials_get_535_5_7_8(relay_factory) -> None:  # noqa: F811
    relay = relay_factory(security="starttls", username="mailer", password="s3cret")

    with connect(relay) as smtp:
        smtp.starttls(context=client_tls())
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            smtp.login("mailer", "wrong")

    assert failed.value.smtp_code == 535
    assert failed.value.smtp_error.startswith(b"5.7.8")
    assert relay.counters["auth_failed"] >= 1


def test_mail_without_auth_is_refused_when_auth_is_required(relay_factory) -> None:  # noqa: F811
    relay = relay_factory(security="starttls", username="mailer", password="s3cret")

    with connect(relay) as smtp:
        smtp.starttls(context=client_tls())
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail("from@mailops.test", ["ana@example.test"], BODY)
        smtp.login("mailer", "s3cret")
        smtp.sendmail("from@mailops.test", ["ana@example.test"], BODY)

    assert refused.value.smtp_code == 530
    assert len(relay.messages) == 1


def test_auth_is_offered_only_after_starttls(relay_factory) -> None:  # noqa: F811
    relay = relay_factory(security="starttls", username="mailer", password="s3cret")

    with connect(relay) as smtp:
        smtp.ehlo()
        before = smtp.has_extn("auth")
        starttls = smtp.has_extn("starttls")
        smtp.starttls(context=client_tls())
        smtp.ehlo()
        after = smtp.has_extn("auth")

    assert (starttls, before, after) == (True, False, True)
    assert relay.counters["tls"] == 1


def test_it_speaks_implicit_tls(relay_factory) -> None:  # noqa: F811
    relay = relay_factory(security="tls", username="mailer", password="s3cret")

    with smtplib.SMTP_SSL(relay.host, relay.port, context=client_tls(), timeout=5) as smtp:
        smtp.login("mailer", "s3cret")
        smtp.sendmail("from@mailops.test", ["ana@example.test"], BODY)

    assert len(relay.messages) == 1


def test_the_certificate_is_for_localhost(relay_factory) -> None:  # noqa: F811
    relay = relay_factory(security="tls")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    with socket.create_connection((relay.host, relay.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)

    assert der is not None
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)


def test_down_refuses_connections_and_up_listens_on_the_same_port(relay: Relay) -> None:
    port = relay.port
    relay.set_down()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((relay.host, port), timeout=2).close()
    relay.set_down(False)
    send_one(relay)

    assert relay.port == port
    assert len(relay.messages) == 1


def test_going_down_cuts_open_sessions(relay: Relay) -> None:
    smtp = connect(relay)
    smtp.ehlo()
    relay.set_down()

    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.noop()
    smtp.close()


def test_a_greeting_override_refuses_the_session(relay: Relay) -> None:
    relay.set_greeting("421 4.3.2 Service not available")

    with pytest.raises(smtplib.SMTPConnectError) as refused:
        connect(relay)

    assert refused.value.smtp_code == 421
    relay.set_greeting(None)
    send_one(relay)
    assert len(relay.messages) == 1


def test_a_drop_cuts_the_connection_at_mail_from_and_keeps_nothing(relay: Relay) -> None:
    relay.queue_faults(Fault.DROP)

    with connect(relay) as smtp, pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.sendmail("from@mailops.test", ["ana@example.test"], BODY)

    assert relay.messages == []
    assert relay.counters["drops"] == 1


def test_a_drop_after_data_keeps_the_message_but_never_answers(relay: Relay) -> None:
    relay.queue_faults(Fault.DROP_AFTER_DATA)

    with connect(relay) as smtp, pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.sendmail("from@mailops.test", ["ana@example.test"], BODY)

    assert len(relay.messages) == 1
    assert relay.counters["drops_after_data"] == 1


def test_failures_can_hit_data_instead_of_rcpt(relay: Relay) -> None:
    relay.set_faults(fail_5xx=1.0, fail_at="data", rejections=("554 5.6.0 Message content rejected",))

    with connect(relay) as smtp, pytest.raises(smtplib.SMTPDataError) as rejected:
        smtp.sendmail("from@mailops.test", ["ana@example.test"], BODY)

    assert (rejected.value.smtp_code, rejected.value.smtp_error) == (554, b"5.6.0 Message content rejected")
    assert relay.counters["data_rejected"] == 1
    assert relay.messages == []


def test_slow_replies_are_delayed_only_where_asked(relay: Relay) -> None:
    relay.set_faults(slow=1.0, slow_delay=0.3, slow_on={"noop"})

    with connect(relay) as smtp:
        smtp.ehlo()
        started = time.monotonic()
        smtp.noop()
        noop_took = time.monotonic() - started

    assert noop_took >= 0.3
    # Only the NOOP reply was held back, not the greeting, EHLO or QUIT.
    assert relay.counters["slow_replies"] == 1


def test_scripted_faults_come_first_then_the_shares_apply(relay: Relay) -> None:
    relay.queue_faults(Fault.DEFER_RCPT, Fault.NONE)
    relay.set_faults(fail_5xx=1.0)

    with connect(relay) as smtp:
        results = []
        for _ in range(3):
            try:
                smtp.sendmail("from@mailops.test", ["ana@example.test"], BODY)
                results.append("ok")
            except smtplib.SMTPRecipientsRefused as refused:
                results.append(str(refused.recipients["ana@example.test"][0]))

    assert relay.counters["connections"] == 1
    assert results[0].startswith("4")
    assert results[1] == "ok"
    assert results[2].startswith("5")


def test_a_seed_makes_the_faults_repeat(relay_factory) -> None:  # noqa: F811
    def outcomes(relay: Relay) -> list[str]:
        seen = []
        with connect(relay) as smtp:
            for n in range(40):
                try:
                    smtp.sendmail("from@mailops.test", [f"r{n}@example.test"], BODY)
                    seen.append("ok")
                except smtplib.SMTPRecipientsRefused as refused:
                    code, text = refused.recipients[f"r{n}@example.test"]
                    seen.append(f"{code} {text.decode()}")
        return seen

    faults = Faults(fail_4xx=0.25, fail_5xx=0.25)
    first = outcomes(relay_factory(faults=faults, seed=7))
    second = outcomes(relay_factory(faults=faults, seed=7))
    other = outcomes(relay_factory(faults=faults, seed=8))

    assert first == second
    assert first != other
    assert any(o.startswith("4") for o in first)
    assert any(o.startswith("5") for o in first)
    assert "ok" in first


def test_fault_shares_are_checked() -> None:
    with pytest.raises(ValueError, match="between 0.0 and 1.0"):
        Faults(drop=1.5)
    with pytest.raises(ValueError, match="must not exceed 1.0"):
        Faults(fail_4xx=0.6, fail_5xx=0.6)
    with pytest.raises(ValueError, match="unknown replies"):
        Faults(slow=0.1, slow_on=frozenset({"helo-world"}))


def test_set_faults_changes_only_what_is_named(relay: Relay) -> None:
    relay.set_faults(drop=0.2)
    relay.set_faults(slow=0.5)

    assert (relay.faults.drop, relay.faults.slow) == (0.2, 0.5)


def test_it_only_listens_on_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        Relay("0.0.0.0")


def test_start_relays_gives_each_relay_its_port_and_folder(tmp_path: Path) -> None:
    relays = start_relays(3, maildir=tmp_path, faults=Faults())
    try:
        for relay in relays:
            send_one(relay)
        ports = {relay.port for relay in relays}
        folders = sorted(p.name for p in tmp_path.iterdir())
        counts = [len(list((tmp_path / f / "new").iterdir())) for f in folders]
    finally:
        for relay in relays:
            relay.stop()

    assert len(ports) == 3
    assert folders == ["relay-1", "relay-2", "relay-3"]
    assert counts == [1, 1, 1]


def test_the_demorelays_command_serves_until_told_to_stop(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    manage = Path(__file__).resolve().parents[2] / "manage.py"
    command = [sys.executable, str(manage), "demorelays", "--count", "2", "--base-port", "0"]
    command += ["--maildir", str(tmp_path), "--fail-5xx", "0.0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        ports = [int(p) for p in lines[2].split(":", 1)[1].split()]
        for port in ports:
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
                smtp.sendmail("from@mailops.test", ["ana@example.test"], BODY)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert lines[0].startswith("relay-1 listening on 127.0.0.1:")
    assert len(ports) == 2
    assert "stopped; 2 messages received" in out, err
    assert sorted(len(list((tmp_path / f"relay-{n}" / "new").iterdir())) for n in (1, 2)) == [1, 1]
