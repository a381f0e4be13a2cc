from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import pytest

from campaigns.dsn import Report, classify_dsn_status, normalize_message_id, parse_report
from servers.outcome import Category

SAMPLES = Path(__file__).parent / "dsn_samples"
HARD, SOFT, POLICY, NONE = Category.HARD, Category.SOFT, Category.POLICY, Category.NONE


@dataclass(frozen=True)
class Sample:
    file: str
    kind: str
    # (final recipient, action, status, category); category None for complaints
    recipients: list[tuple[str, str, str, Category | None]]
    message_id: str
    mailops_message_id: str
    standard: bool = True


CASES = [
    Sample("postfix_user_unknown.eml", "dsn", [("nobody@example.org", "failed", "5.1.1", HARD)],
           "<171567966912.1042.7f3e9c2a@example.com>", "1042"),
    Sample("postfix_gmail_no_such_user.eml", "dsn", [("no.such.person.2024@gmail.com", "failed", "5.1.1", HARD)],
           "<171575716201.2001.0b9d4e11@example.com>", "2001"),
    Sample("exim_failed.eml", "dsn", [("valerie@example.net", "failed", "5.0.0", HARD)],
           "<171585740588.3003.c41d0e7f@example.com>", "3003"),
    Sample("office365_recipient_not_found.eml", "dsn", [("nobody@contoso.com", "failed", "5.1.10", HARD)],
           "<171593370042.4004.9e8d7c6b@example.com>", "4004"),
    Sample("gmail_relay_failure.eml", "dsn", [("nobody@yahoo.com", "failed", "5.0.0", HARD)],
           "<171567966955.5005.aa11bb22@example.com>", "5005"),
    Sample("yahoo_failure_notice.eml", "dsn", [("old.customer@example.org", "failed", "5.1.1", HARD)],
           "<1587651234.123456.1716038401234@mail.yahoo.com>", "6006", standard=False),
    Sample("sendmail_user_unknown.eml", "dsn", [("nosuchuser@example.edu", "failed", "5.1.1", HARD)],
           "<171612936101.7007.51e2f4aa@example.com>", "7007"),
    Sample("qmail_failure_notice.eml", "dsn", [("olduser@example.net", "failed", "5.1.1", HARD)],
           "<171618492903.8008.e5f6a7b8@example.com>", "8008", standard=False),
    Sample("amazon_ses_bounce.eml", "dsn", [("bounce@simulator.amazonses.com", "failed", "5.1.1", HARD)],
           "<171630626001.9009.0c1d2e3f@example.com>", "9009"),
    Sample("postfix_delayed.eml", "dsn", [("ceo@slow-example.org", "delayed", "4.4.1", SOFT)],
           "<171636915201.1100.77aa88bb@example.com>", "1100"),
    Sample("postfix_delivered.eml", "dsn", [("alice@example.org", "delivered", "2.0.0", NONE)],
           "<171645120301.1200.3f2e1d0c@example.com>", "1200"),
    Sample("sendmail_relayed.eml", "dsn", [("prof.smith@example.edu", "relayed", "2.0.0", NONE)],
           "<171646213901.1300.6a5b4c3d@example.com>", "1300"),
    Sample("postfix_multi_recipient.eml", "dsn",
           [("gone@example.org", "failed", "5.1.1", HARD),
            ("full@example.org", "failed", "5.2.2", SOFT),
            ("someone@strict-example.net", "failed", "5.7.1", POLICY)],
           "<171656820801.team.5e4d3c2b@example.com>", ""),
    Sample("arf_yahoo_abuse.eml", "arf", [("sunny.days@yahoo.com", "", "", None)],
           "<171666354001.1400.9f8e7d6c@example.com>", "1400"),
    Sample("arf_rfc5965_example.eml", "arf", [("user@example.com", "", "", None)],
           "<8787KJKJ3K4J3K4J3K4J3.mail@example.net>", ""),
    Sample("arf_headers_only_redacted.eml", "arf", [("pat.doe@isp.example", "", "", None)],
           "<171670920101.1500.1a2b3c4d@example.com>", "1500"),
    Sample("utf8_8bit_diagnostic.eml", "dsn", [("j.mueller@beispiel.de", "failed", "5.1.1", HARD)],
           "<171679740701.1600.deadbeef@example.com>", "1600"),
    Sample("global_dsn_utf8_address.eml", "dsn", [("用户@例子.广告", "failed", "5.1.1", HARD)],
           "<171689759901.1700.cafef00d@example.com>", "1700"),
    Sample("exim_plain_text_legacy.eml", "dsn", [("info@closed-shop.example", "failed", "5.1.1", HARD)],
           "<171698894901.1800.b0b0cafe@example.com>", "1800", standard=False),
]


def parse(name: str) -> Report:
    report = parse_report((SAMPLES / name).read_bytes())
    assert report is not None, f"{name} was not recognised as a report"
    return report


@pytest.mark.parametrize("sample", CASES, ids=[case.file.removesuffix(".eml") for case in CASES])
def test_it_reads_recipient_action_status_and_message_id_from_real_reports(sample: Sample) -> None:
    report = parse(sample.file)
    assert report.kind == sample.kind
    assert [(r.final_recipient, r.action, r.status) for r in report.recipients] == [
        (address, action, status) for address, action, status, _ in sample.recipients
    ]
    assert report.original_message_id == sample.message_id
    assert report.mailops_message_id == sample.mailops_message_id
    assert report.standard is sample.standard
    for recipient, (_, _, _, category) in zip(report.recipients, sample.recipients, strict=True):
        if category is not None:
            assert recipient.category is category, recipient


def test_every_sample_file_is_in_the_table() -> None:
    on_disk = {path.name for path in SAMPLES.glob("*.eml")} - {"not_a_bounce_out_of_office.eml"}
    assert on_disk == {case.file for case in CASES}
    assert len(CASES) >= 15


def test_it_reads_the_per_message_and_per_recipient_fields() -> None:
    report = parse("sendmail_user_unknown.eml")
    assert report.reporting_mta == "mail.example.edu"
    assert report.arrival_date == "Sun, 19 May 2024 10:36:02 -0400"
    (recipient,) = report.recipients
    assert recipient.original_recipient == "NoSuchUser@example.edu"
    assert recipient.remote_mta == "mx.example.edu"
    assert recipient.diagnostic_type == "smtp"
    assert recipient.diagnostic_code == "550 5.1.1 <nosuchuser@example.edu>... User unknown"
    assert recipient.last_attempt_date == "Sun, 19 May 2024 10:36:03 -0400"


def test_it_unfolds_a_long_diagnostic_and_trims_gmails_remote_mta_comment() -> None:
    (recipient,) = parse("gmail_relay_failure.eml").recipients
    assert recipient.remote_mta == "mta7.am0.yahoodns.net"
    assert recipient.diagnostic_code == (
        "554 delivery error: dd This user doesn't have a yahoo.com account (nobody@yahoo.com) [0] - "
        "mta4013.mail.gq1.yahoo.com"
    )
    (gmail,) = parse("postfix_gmail_no_such_user.eml").recipients
    assert gmail.diagnostic_code.startswith("550-5.1.1 The email account that you tried to reach does not exist.")
    assert gmail.diagnostic_code.endswith("a640c23a62f3a-a5a1781c9b4si123456766b.245 - gsmtp")


def test_it_keeps_an_8bit_utf8_diagnostic_readable() -> None:
    report = parse("utf8_8bit_diagnostic.eml")
    (recipient,) = report.recipients
    assert recipient.diagnostic_code == (
        "550 5.1.1 <j.mueller@beispiel.de>: Empfängeradresse abgelehnt: Postfach existiert nicht – Benutzer unbekannt"
    )
    assert report.original_headers["from"] == "Bäckerei Schön <info@example.com>"
    assert report.original_headers["subject"] == "Ihre Bestellung über 3 Brötchen"


def test_it_reads_an_internationalized_global_dsn() -> None:
    report = parse("global_dsn_utf8_address.eml")
    (recipient,) = report.recipients
    assert recipient.original_recipient == "用户@例子.广告"
    assert recipient.diagnostic_code == "550 5.1.1 用户不存在"
    assert report.reporting_mta == "relay2.example.com"


def test_a_delay_notice_says_until_when_it_retries_and_is_only_soft() -> None:
    (recipient,) = parse("postfix_delayed.eml").recipients
    assert recipient.will_retry_until == "Mon, 27 May 2024 09:12:33 +0000 (UTC)"
    assert recipient.diagnostic_type == "x-postfix"
    assert recipient.diagnostic_code == "connect to mx.slow-example.org[192.0.2.44]:25: Connection timed out"
    assert recipient.category is SOFT


def test_the_returned_headers_are_lower_cased_and_decoded() -> None:
    report = parse("postfix_gmail_no_such_user.eml")
    assert report.original_headers["subject"] == "Café opening this week"
    assert report.original_headers["to"] == "no.such.person.2024@gmail.com"
    assert report.original_headers["x-mailops-message"] == "2001"


def test_the_envelope_recipient_comes_from_the_delivery_headers() -> None:
    assert parse("postfix_user_unknown.eml").envelope_to == "b-1042-mfrgg2lthfvgk3dp@bounces.example.com"
    assert parse("exim_failed.eml").envelope_to == "b-3003-onxw2zlknfxgk5dt@bounces.example.com"
    # No delivery header at all: the To of the report is the return path it was sent to.
    assert parse("office365_recipient_not_found.eml").envelope_to == "b-4004-mzxw6ytboi2dqmbq@bounces.example.com"


def test_an_envelope_recipient_given_by_the_receiver_wins() -> None:
    raw = (SAMPLES / "postfix_user_unknown.eml").read_bytes()
    report = parse_report(raw, envelope_to="b-9-aaaaaaaaaaaaaaaa@bounces.example.com")
    assert report is not None
    assert report.envelope_to == "b-9-aaaaaaaaaaaaaaaa@bounces.example.com"


def test_an_abuse_report_names_the_complaint_and_its_source() -> None:
    report = parse("arf_rfc5965_example.eml")
    assert report.is_complaint
    assert report.feedback_type == "abuse"
    assert report.user_agent == "SomeGenerator/1.0"
    assert report.source_ip == "192.0.2.1"
    assert report.original_mail_from == "somespammer@example.net"
    assert report.reporting_mta == "mail.example.com"
    assert report.arrival_date == "Thu, 8 Mar 2005 14:00:00 EDT"
    assert report.fields["authentication-results"] == "mail.example.com; spf=fail smtp.mail=somespammer@example.com"


def test_a_provider_report_without_original_rcpt_to_falls_back_to_the_returned_to() -> None:
    report = parse("arf_headers_only_redacted.eml")
    assert "original-rcpt-to" not in report.fields
    assert [r.final_recipient for r in report.recipients] == ["pat.doe@isp.example"]
    assert report.original_headers["subject"] == "Last chance: 50% off ✨"
    assert report.original_mail_from == "b-1500-mfqwiyltmvzgs3dt@bounces.example.com"


def test_yahoo_feedback_uses_received_date_for_the_arrival() -> None:
    report = parse("arf_yahoo_abuse.eml")
    assert report.arrival_date == "Sat, 25 May 2024 18:59:01 +0000"
    assert report.user_agent == "Yahoo!-Mail-Feedback/2.0"


def test_it_falls_back_to_gmails_x_original_message_id() -> None:
    raw = (SAMPLES / "gmail_relay_failure.eml").read_bytes()
    without_original = raw.replace(b"\nMessage-ID: <171567966955", b"\nX-Was-Message-ID: <171567966955")
    assert without_original != raw
    report = parse_report(without_original)
    assert report is not None
    assert report.original_message_id == "<171567966955.5005.aa11bb22@example.com>"


def test_it_reads_a_base64_encoded_delivery_status() -> None:
    raw = (SAMPLES / "sendmail_user_unknown.eml").read_bytes()
    head, rest = raw.split(b"Content-Type: message/delivery-status\n\n", 1)
    status, tail = rest.split(b"\n--44JAa3p1012345", 1)
    encoded = base64.encodebytes(status)
    rebuilt = (
        head + b"Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n"
        + encoded + b"\n--44JAa3p1012345" + tail
    )
    report = parse_report(rebuilt)
    assert report is not None
    assert [(r.final_recipient, r.action, r.status) for r in report.recipients] == [
        ("nosuchuser@example.edu", "failed", "5.1.1")
    ]


def test_it_finds_a_report_nested_in_a_wrapper() -> None:
    inner = (SAMPLES / "amazon_ses_bounce.eml").read_bytes()
    headers, body = inner.split(b"\n\n", 1)
    content_type = (
        b'Content-Type: multipart/report; \n\tboundary="----=_Part_1209875_1843519187.1716306261307"; '
        b"\n\treport-type=delivery-status"
    )
    assert content_type in headers
    wrapped = (
        b"From: gateway@example.com\nTo: bounces@example.com\nSubject: Delivery Status Notification (Failure)\n"
        b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"outer\"\n\n"
        b"--outer\nContent-Type: text/plain\n\nScanned by the gateway.\n\n"
        b"--outer\n" + content_type + b"\n\n" + body + b"\n--outer--\n"
    )
    report = parse_report(wrapped)
    assert report is not None
    assert [r.final_recipient for r in report.recipients] == ["bounce@simulator.amazonses.com"]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param((SAMPLES / "not_a_bounce_out_of_office.eml").read_bytes(), id="out-of-office"),
        pytest.param(b"From: a@example.org\nTo: b@example.com\nSubject: hello\n\nJust saying hi.\n", id="plain-mail"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\xff garbage without headers", id="garbage"),
        pytest.param(
            b"From: MAILER-DAEMON@mx.example.org\nSubject: Undelivered Mail Returned to Sender\n\n"
            b"Something went wrong, but nobody said with which address.\n",
            id="bounce-without-an-address",
        ),
    ],
)
def test_it_returns_none_for_mail_that_is_not_a_usable_report(raw: bytes) -> None:
    assert parse_report(raw) is None


@pytest.mark.parametrize(
    ("status", "diagnostic", "action", "category"),
    [
        ("5.1.1", "550 5.1.1 <a@example.org>: Recipient address rejected: User unknown", "failed", HARD),
        ("5.0.0", "550 5.1.1 <a@example.org>: Recipient address rejected: User unknown", "failed", HARD),
        ("5.0.0", "554 delivery error: dd This user doesn't have a yahoo.com account (a@yahoo.com) [0]", "failed",
         HARD),
        ("5.1.1", "", "failed", HARD),
        ("5.2.2", "552 5.2.2 <a@example.org>: Recipient address rejected: Mailbox is full", "failed", SOFT),
        ("5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.6] blocked using zen.spamhaus.org", "failed",
         POLICY),
        ("5.0.0", "550 Rejected because 192.0.2.6 is in a black list at b.barracudacentral.org", "failed", POLICY),
        ("4.4.1", "connect to mx.example.org[192.0.2.25]:25: Connection timed out", "delayed", SOFT),
        # Postfix keeps the last 4.x.x when it finally gives up: not the recipient's fault.
        ("4.4.1", "connect to mx.example.org[192.0.2.25]:25: Connection timed out", "failed", SOFT),
        ("5.3.4", "552 5.3.4 Message size exceeds fixed limit", "failed", Category.PERMANENT),
        ("5.1.0", "550 5.1.0 <b@example.com>: Sender address rejected: User unknown (in reply to MAIL FROM command)",
         "failed", Category.PERMANENT),
        ("2.0.0", "250 2.0.0 Ok: queued as 4VV8h13QmVz1Rr2", "delivered", NONE),
        ("", "", "failed", Category.UNKNOWN),
    ],
)
def test_classify_dsn_status_maps_statuses_onto_categories(
    status: str, diagnostic: str, action: str, category: Category
) -> None:
    assert classify_dsn_status(status, diagnostic, action=action) is category


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<abc@example.com>", "<abc@example.com>"),
        ("  <abc@example.com> (comment)", "<abc@example.com>"),
        ("8787KJKJ3K4J3K4J3K4J3.mail@example.net", "<8787KJKJ3K4J3K4J3K4J3.mail@example.net>"),
        ("", ""),
    ],
)
def test_message_ids_are_normalized_to_the_bracketed_form(value: str, expected: str) -> None:
    assert normalize_message_id(value) == expected
