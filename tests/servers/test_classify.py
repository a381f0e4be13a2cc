from __future__ import annotations

import pytest

from servers.classify import classify, parse_reply
from servers.outcome import Category, Outcome, Status

A, D, B, U = Status.ACCEPTED, Status.DEFERRED, Status.BOUNCED, Status.UNKNOWN
HARD, SOFT, POLICY, SERVER, PERM = Category.HARD, Category.SOFT, Category.POLICY, Category.SERVER, Category.PERMANENT

# (id, code, reply as the server sent it, stage, status, category, enhanced)
# The replies are the ones providers publish or that show up in their bounces;
# only addresses, IPs (documentation ranges) and session ids are replaced.
REPLIES = [
    # --- Gmail / Google Workspace -------------------------------------------------
    ("gmail-no-such-user", 550,
     "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
     "550-5.1.1 double-checking the recipient's email address for typos or\n"
     "550-5.1.1 unnecessary spaces. Learn more at\n"
     "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser d9443c01a7336-1f3d7c9c2e5si1234567pla.123 - gsmtp",
     "rcpt", B, HARD, "5.1.1"),
    ("gmail-unsolicited-rate-limit", 421,
     "421-4.7.28 [192.0.2.10      15] Our system has detected an unusual rate of\n"
     "421-4.7.28 unsolicited mail originating from your IP address. To protect our\n"
     "421-4.7.28 users from spam, mail sent from your IP address has been temporarily\n"
     "421-4.7.28 rate limited. Please visit\n"
     "421-4.7.28  https://support.google.com/mail/?p=UnsolicitedRateLimitError to\n"
     "421 4.7.28 review our Bulk Email Senders Guidelines. a640c23a62f3a-a55b1c6e1b2si123456766b.123 - gsmtp",
     "data", D, POLICY, "4.7.28"),
    ("gmail-unauthenticated", 550,
     "550-5.7.26 This mail is unauthenticated, which poses a security risk to the\n"
     "550-5.7.26 sender and Gmail users, and has been blocked. The sender must\n"
     "550-5.7.26 authenticate with at least one of SPF or DKIM. For this message,\n"
     "550-5.7.26 DKIM checks did not pass and SPF check for [example.com] did not\n"
     "550-5.7.26 pass with ip: [192.0.2.10]. The sender should visit\n"
     "550-5.7.26  https://support.google.com/mail/answer/81126#authentication for\n"
     "550 5.7.26 instructions on setting up authentication. 5b1f17b1804b1-41fd2d5b6f5si1234567f9.123 - gsmtp",
     "data", B, POLICY, "5.7.26"),
    ("gmail-over-quota-temporary", 452,
     "452-4.2.2 The email account that you tried to reach is over quota. Please direct\n"
     "452-4.2.2 the recipient to\n"
     "452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp 6a1803df08f44-6a0f4d3c9c2si123456d6.45 - gsmtp",
     "rcpt", D, SOFT, "4.2.2"),
    ("gmail-likely-unsolicited", 550,
     "550-5.7.1 [192.0.2.10      12] Our system has detected that this message is\n"
     "550-5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail,\n"
     "550-5.7.1 this message has been blocked. Please visit\n"
     "550-5.7.1  https://support.google.com/mail/?p=UnsolicitedMessageError\n"
     "550 5.7.1  for more information. d75a77b69052e-43df2a4b3c1si123456cf.321 - gsmtp",
     "data", B, POLICY, "5.7.1"),
    ("gmail-low-ip-reputation", 421,
     "421-4.7.0 [192.0.2.10      15] Our system has detected that this message is\n"
     "421-4.7.0 suspicious due to the very low reputation of the sending IP address.\n"
     "421-4.7.0 To protect our users from spam, mail sent from your IP address has\n"
     "421-4.7.0 been temporarily rate limited. Please visit\n"
     "421 4.7.0  https://support.google.com/mail/answer/188131 for more information. x4si1234567wra.12 - gsmtp",
     "data", D, POLICY, "4.7.0"),
    ("gmail-over-quota-and-inactive", 552,
     "552-5.2.2 The email account that you tried to reach is over quota and inactive.\n"
     "552-5.2.2 Please direct the recipient to\n"
     "552 5.2.2  https://support.google.com/mail/?p=OverQuotaPerm 71dfb90a1353d-4e1f1d2c3b4si123456e0c.12 - gsmtp",
     "rcpt", D, SOFT, "5.2.2"),
    ("gmail-receiving-rate", 450,
     "450-4.2.1 The user you are trying to contact is receiving mail at a rate that\n"
     "450-4.2.1 prevents additional messages from being delivered. Please resend your\n"
     "450-4.2.1 message at a later time. If the user is able to receive mail at that\n"
     "450-4.2.1 time, your message will be delivered. For more information, please\n"
     "450-4.2.1 visit\n"
     "450 4.2.1  https://support.google.com/mail/?p=ReceivingRate o12si1234567qtp.34 - gsmtp",
     "rcpt", D, SOFT, "4.2.1"),
    ("gmail-disabled-account", 550,
     "550-5.2.1 The email account that you tried to reach is disabled. Learn more at\n"
     "550 5.2.1  https://support.google.com/mail/?p=DisabledUser z8si1234567ejb.56 - gsmtp",
     "rcpt", B, PERM, "5.2.1"),
    ("gmail-message-too-big", 552,
     "552-5.3.4 Your message exceeded Google's message size limits. Please visit\n"
     "552-5.3.4  https://support.google.com/mail/?p=MaxSizeError to view our size\n"
     "552 5.3.4 guidelines. j6si1234567pfa.78 - gsmtp",
     "data", B, PERM, "5.3.4"),
    ("gmail-recipient-domain-policy", 550,
     "550-5.7.1 The user or domain that you are sending to (or from) has a policy that\n"
     "550-5.7.1 prohibited the mail that you sent. Please contact your domain\n"
     "550-5.7.1 administrator for further details. For more information, please visit\n"
     "550 5.7.1  https://support.google.com/a/answer/172179 q7si1234567ybk.90 - gsmtp",
     "rcpt", B, POLICY, "5.7.1"),
    ("gmail-missing-ptr", 550,
     "550-5.7.25 [192.0.2.10] The IP address sending this message does not have a\n"
     "550-5.7.25 PTR record setup, or the corresponding forward DNS entry does not\n"
     "550-5.7.25 point to the sending IP. As a policy, Gmail does not accept messages\n"
     "550-5.7.25 from IPs with missing PTR records. Please visit\n"
     "550-5.7.25  https://support.google.com/mail/answer/81126#ip-practices for more\n"
     "550 5.7.25 information. k2si1234567qvb.11 - gsmtp",
     "data", B, POLICY, "5.7.25"),
    ("gmail-accepted", 250, "250 2.0.0 OK  1714060800 a1si1234567qkb.12 - gsmtp", "data", A, Category.NONE, "2.0.0"),
    ("gmail-bad-credentials", 535,
     "535-5.7.8 Username and Password not accepted. For more information, go to\n"
     "535 5.7.8  https://support.google.com/mail/?p=BadCredentials 4fb4d7f45d1cf-57d2f1a3b4csm1234567a12.34 - gsmtp",
     "auth", D, SERVER, "5.7.8"),
    ("gmail-starttls-required", 530,
     "530 5.7.0 Must issue a STARTTLS command first. 4fb4d7f45d1cf-57d2f1a3b4csm1234567a12.35 - gsmtp",
     "auth", D, SERVER, "5.7.0"),
    # --- Yahoo / AOL ----------------------------------------------------------------
    ("yahoo-tss04-volume-or-complaints", 421,
     "421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     "rcpt", D, POLICY, "4.7.0"),
    ("yahoo-tss09-permanently-deferred", 553,
     "553 5.7.2 [TSS09] All messages from 192.0.2.10 will be permanently deferred; Retrying will NOT succeed. "
     "See https://postmaster.yahooinc.com/error-codes",
     "rcpt", B, POLICY, "5.7.2"),
    ("yahoo-no-such-account", 554,
     "554 delivery error: dd This user doesn't have a yahoo.com account (nobody@yahoo.com) [0] - "
     "mta1481.mail.ne1.yahoo.com",
     "data", B, HARD, ""),
    ("yahoo-ts03", 421,
     "421 4.7.1 [TS03] All messages from 192.0.2.10 will be permanently deferred; Retrying will NOT succeed. "
     "See https://postmaster.yahooinc.com/error-codes",
     "connect", D, POLICY, "4.7.1"),
    ("yahoo-ts01-odd-enhanced-code", 421,
     "421 4.16.55 [TS01] Messages from 192.0.2.10 temporarily deferred due to excessive user complaints - "
     "4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     "rcpt", D, POLICY, "4.16.55"),
    ("yahoo-policy-reasons", 554,
     "554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes",
     "data", B, POLICY, "5.7.9"),
    ("yahoo-bl21-spamhaus", 553,
     "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.10, because the ip is in Spamhaus's list; "
     "see http://postmaster.yahoo.com/550-bl23.html",
     "connect", B, POLICY, "5.7.1"),
    # --- Microsoft: Outlook.com, Exchange Online ----------------------------------------
    ("outlook-s3150-block-list", 550,
     "550 5.7.1 Unfortunately, messages from [192.0.2.10] weren't sent. Please contact your Internet service "
     "provider since part of their network is on our block list (S3150). You can also refer your provider to "
     "http://mail.live.com/mail/troubleshooting.aspx#errors. [DB3EUR04FT007.eop-eur04.prod.protection.outlook.com]",
     "mail", B, POLICY, "5.7.1"),
    ("outlook-mailbox-unavailable", 550,
     "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). "
     "[AM4PEPF00027A5F.eurprd04.prod.outlook.com]",
     "rcpt", B, HARD, "5.5.0"),
    ("exchange-online-recipient-not-found", 550,
     "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient nobody@contoso.com not found by SMTP address lookup",
     "rcpt", B, HARD, "5.1.10"),
    ("outlook-ip-reputation-rate-limit", 451,
     "451 4.7.650 The mail server [192.0.2.10] has been temporarily rate limited due to IP reputation. For "
     "e-mail delivery information, see https://postmaster.live.com (S775) "
     "[Name=Protocol Filter Agent][AGT=PFA][MxId=11B9B2E8A5C38715] "
     "[DM6NAM11FT012.eop-nam11.prod.protection.outlook.com]",
     "rcpt", D, POLICY, "4.7.650"),
    ("exchange-online-banned-ip", 550,
     "550 5.7.606 Access denied, banned sending IP [192.0.2.10]. To request removal from this list please visit "
     "https://sender.office.com/ and follow the directions. For more information please go to "
     "http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430) [BN8NAM12FT043.eop-nam12.prod.protection.outlook.com]",
     "rcpt", B, POLICY, "5.7.606"),
    ("exchange-online-edge-block", 550,
     "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) "
     "[DM6NAM12FT032.eop-nam12.prod.protection.outlook.com]",
     "rcpt", B, PERM, "5.4.1"),
    ("exchange-mailbox-full", 554,
     "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded; "
     "Failed to process message due to a permanent exception with message Cannot open mailbox",
     "data", D, SOFT, "5.2.2"),
    ("exchange-online-traffic-not-accepted", 550,
     "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. For more information "
     "please go to http://go.microsoft.com/fwlink/?LinkId=526653 AS(7230) "
     "[BN8NAM12FT061.eop-nam12.prod.protection.outlook.com]",
     "rcpt", B, POLICY, "5.7.708"),
    ("exchange-too-many-recipients", 452,
     "452 4.5.3 Too many recipients (AS780090) [BN8NAM12FT061.eop-nam12.prod.protection.outlook.com]",
     "rcpt", D, SOFT, "4.5.3"),
    ("exchange-service-not-available-mid-session", 421, "421 4.3.2 Service not available", "rcpt", D, POLICY, "4.3.2"),
    ("exchange-service-not-available-at-greeting", 421, "421 4.3.2 Service not available", "connect", D, SERVER,
     "4.3.2"),
    # --- Spamhaus and other blocklists --------------------------------------------------
    ("postfix-zen-spamhaus", 554,
     "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org; "
     "https://www.spamhaus.org/query/ip/192.0.2.10",
     "rcpt", B, POLICY, "5.7.1"),
    ("postfix-spamhaus-without-enhanced-code", 554,
     "554 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org",
     "rcpt", B, POLICY, ""),
    ("spamhaus-at-greeting", 554,
     "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org",
     "connect", B, POLICY, "5.7.1"),
    ("barracuda-reputation", 554,
     "554 Service unavailable; Client host [192.0.2.10] blocked using Barracuda Reputation; "
     "http://www.barracudanetworks.com/reputation/?pr=1&ip=192.0.2.10",
     "rcpt", B, POLICY, ""),
    ("spamcop", 554,
     "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using bl.spamcop.net; "
     "Blocked - see https://www.spamcop.net/bl.shtml?192.0.2.10",
     "rcpt", B, POLICY, "5.7.1"),
    ("exim-dnslists-black-list", 550,
     "550-Rejected because 192.0.2.10 is in a black list at zen.spamhaus.org\n"
     "550 https://www.spamhaus.org/query/ip/192.0.2.10",
     "rcpt", B, POLICY, ""),
    ("sendmail-dnsbl-listed-at", 550, "550 5.7.1 Rejected: 192.0.2.10 listed at zen.spamhaus.org", "connect", B,
     POLICY, "5.7.1"),
    ("generic-code-naming-a-blocklist", 550,
     "550 5.0.0 Message rejected: 192.0.2.10 is listed on the Spamhaus Block List (SBL)",
     "rcpt", B, POLICY, "5.0.0"),
    ("proofpoint-ip-reputation", 554, "554 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.10", "connect",
     B, POLICY, ""),
    # --- Postfix, Exim, qmail, Dovecot and others ----------------------------------------
    ("postfix-user-unknown", 550,
     "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
     "rcpt", B, HARD, "5.1.1"),
    ("postfix-user-unknown-temporarily", 450,
     "450 4.1.1 <nobody@example.org>: Recipient address rejected: User unknown in local recipient table",
     "rcpt", D, SOFT, "4.1.1"),
    ("dovecot-lmtp-quota", 552,
     "552 5.2.2 <someone@example.org> Quota exceeded (mailbox for user is full)", "data", D, SOFT, "5.2.2"),
    ("postfix-greylisted", 450,
     "450 4.2.0 <someone@example.org>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/help/example.org.html",
     "rcpt", D, SOFT, "4.2.0"),
    ("postfix-helo-rejected", 450, "450 4.7.1 <mail.example.com>: Helo command rejected: Host not found", "helo", D,
     POLICY, "4.7.1"),
    ("postfix-relay-access-denied", 554, "554 5.7.1 <someone@example.org>: Relay access denied", "rcpt", B, POLICY,
     "5.7.1"),
    ("postfix-message-size", 552, "552 5.3.4 Message size exceeds fixed limit", "data", B, PERM, "5.3.4"),
    ("postfix-sender-domain-not-found", 553,
     "553 5.1.8 <bounces@nonexistent.invalid>: Sender address rejected: Domain not found", "mail", B, PERM,
     "5.1.8"),
    ("postfix-sender-unknown-at-rcpt", 550,
     "550 5.1.0 <bounces@example.com>: Sender address rejected: User unknown in virtual mailbox table",
     "rcpt", B, PERM, "5.1.0"),
    ("postfix-client-host-rejected", 554,
     "554 5.7.1 <unknown[192.0.2.10]>: Client host rejected: Access denied", "rcpt", B, POLICY, "5.7.1"),
    ("postfix-queued", 250, "250 2.0.0 Ok: queued as 4VQ1Xk2Lq9z9sVb", "data", A, Category.NONE, "2.0.0"),
    ("postfix-shutting-down", 421, "421 4.3.2 Service shutting down, closing transmission channel", "connect", D,
     SERVER, "4.3.2"),
    ("exim-unrouteable", 550, "550 Unrouteable address", "rcpt", B, PERM, ""),
    ("exim-sender-callout", 550,
     "550-Verification failed for <bounces@example.com>\n"
     "550-Called:   192.0.2.20\n"
     "550-Sent:     RCPT TO:<bounces@example.com>\n"
     "550-Response: 550 5.1.1 <bounces@example.com>: Recipient address rejected: User unknown\n"
     "550 Sender verify failed",
     "rcpt", B, PERM, "5.1.1"),
    ("qmail-no-mailbox", 550, "550 sorry, no mailbox here by that name. (#5.1.1)", "rcpt", B, HARD, "5.1.1"),
    ("qmail-chkuser", 511, "511 sorry, no mailbox here by that name (#5.1.1 - chkuser)", "rcpt", B, HARD, "5.1.1"),
    ("qmail-rcpthosts", 553, "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", "rcpt", B,
     POLICY, "5.7.1"),
    ("barracuda-appliance-policy", 450,
     "450 cuda_nsu 4.7.1 <someone@example.org>: Recipient address rejected: Policy Rejection- Abuse. Go away.",
     "rcpt", D, POLICY, "4.7.1"),
    ("comcast-not-our-customer", 550, "550 5.1.1 <nobody@comcast.net> Not our Customer", "rcpt", B, HARD, "5.1.1"),
    ("icloud-user-does-not-exist", 550, "550 5.1.1 <nobody@icloud.com>: user does not exist", "rcpt", B, HARD,
     "5.1.1"),
    ("icloud-cs01-local-policy", 554,
     "554 5.7.1 [CS01] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137",
     "data", B, POLICY, "5.7.1"),
    ("yandex-no-such-user-under-policy-code", 550, "550 5.7.1 No such user!", "rcpt", B, HARD, "5.7.1"),
    ("rfc5321-plain-no-such-user", 550, "550 No Such User Here", "rcpt", B, HARD, ""),
    ("plain-mailbox-full", 552, "552 Requested mail action aborted: exceeded storage allocation", "data", D, SOFT,
     ""),
    # --- no reply at all: what a transport reports when the socket fails -----------------
    ("connection-refused", None, "[Errno 111] Connection refused", "connect", D, SERVER, ""),
    ("connect-timeout", None, "Timed out connecting to smtp.example.com on port 587", "connect", D, SERVER, ""),
    ("certificate-rejected", None,
     "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1000)",
     "tls", D, SERVER, ""),
    ("starttls-unavailable", 454, "454 4.7.0 TLS not available due to local problem", "tls", D, SERVER, "4.7.0"),
    ("postfix-sasl-failed", 535, "535 5.7.8 Error: authentication failed: UGFzc3dvcmQ6", "auth", D, SERVER, "5.7.8"),
    ("dropped-before-data", None, "Server disconnected unexpectedly", "rcpt", D, SERVER, ""),
    ("reply-lost-after-data", None, "Timed out waiting for server response", "data", U, Category.UNKNOWN, ""),
]


@pytest.mark.parametrize(
    ("code", "text", "stage", "status", "category", "enhanced"),
    [pytest.param(*case[1:], id=case[0]) for case in REPLIES],
)
def test_it_classifies_real_world_replies(
    code: int | None, text: str, stage: str, status: Status, category: Category, enhanced: str
) -> None:
    outcome = classify(code, text, stage=stage)
    assert (outcome.status, outcome.category, outcome.enhanced) == (status, category, enhanced)
    assert outcome.code == code


def test_the_table_is_big_enough_to_mean_something() -> None:
    assert len(REPLIES) >= 45
    assert len({case[0] for case in REPLIES}) == len(REPLIES)


def test_it_keeps_only_the_words_of_a_multiline_reply() -> None:
    outcome = classify(
        550,
        "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
        "550-5.1.1 double-checking the recipient's email address for typos or\n"
        "550 5.1.1 unnecessary spaces. - gsmtp",
    )
    assert outcome.text == (
        "The email account that you tried to reach does not exist. Please try "
        "double-checking the recipient's email address for typos or unnecessary spaces. - gsmtp"
    )
    assert outcome.summary == "550 5.1.1 " + outcome.text


def test_it_reads_replies_whose_code_the_client_library_already_stripped() -> None:
    # aiosmtplib hands over the code separately and each line without it.
    outcome = classify(
        550,
        "5.1.1 The email account that you tried to reach does not exist. Please try\n"
        "5.1.1 double-checking the recipient's email address for typos or\n"
        "5.1.1 unnecessary spaces.",
        stage="rcpt",
    )
    assert (outcome.category, outcome.enhanced) == (HARD, "5.1.1")
    assert "5.1.1" not in outcome.text


def test_it_reads_a_folded_dsn_diagnostic_code() -> None:
    reply = parse_reply(
        "smtp; 550-5.1.1 The email account that you tried to reach does\n"
        "    not exist. Please try 550-5.1.1 double-checking the recipient's email\n"
        "    address for typos or 550-5.1.1 unnecessary spaces. Learn more at 550 5.1.1\n"
        "    https://support.google.com/mail/?p=NoSuchUser 7-v6si8057303wrp.401 - gsmtp"
    )
    assert (reply.code, reply.enhanced) == (550, "5.1.1")
    assert reply.message == (
        "The email account that you tried to reach does not exist. Please try double-checking the "
        "recipient's email address for typos or unnecessary spaces. Learn more at "
        "https://support.google.com/mail/?p=NoSuchUser 7-v6si8057303wrp.401 - gsmtp"
    )


def test_it_finds_the_code_inside_prose() -> None:
    reply = parse_reply("host mx.example.org[192.0.2.25] said: 550 5.1.1 <a@example.org>: User unknown")
    assert (reply.code, reply.enhanced) == (550, "5.1.1")


def test_it_does_not_take_ip_addresses_or_versions_for_enhanced_codes() -> None:
    outcome = classify(554, "554 mx.example.org ESMTP Postfix 2.10.1 refuses 192.0.2.5.1 and 5.1.1.1", stage="rcpt")
    assert outcome.enhanced == ""
    assert outcome.category is PERM


def test_an_enhanced_code_of_another_class_than_the_reply_is_ignored() -> None:
    # "(#4.4.1)" in a 5xx reply describes an earlier attempt, not this verdict.
    outcome = classify(550, "550 giving up after earlier (#4.4.1) timeout", stage="rcpt")
    assert outcome.enhanced == ""


def test_only_hard_bounces_suppress_the_recipient() -> None:
    suppressing = {case[0] for case in REPLIES if classify(case[1], case[2], stage=case[3]).suppresses_recipient}
    assert suppressing == {case[0] for case in REPLIES if case[5] is HARD}
    assert "outlook-s3150-block-list" not in suppressing


def test_server_failures_and_421_fail_over_but_policy_bounces_do_not() -> None:
    assert classify(None, "Connection refused", stage="connect").is_failover
    assert classify(535, "5.7.8 Authentication failed", stage="auth").is_failover
    assert classify(421, "4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred", stage="rcpt").is_failover
    # Spreading blocked mail over other IPs would be evading the filter.
    blocked = classify(554, "5.7.1 Client host [192.0.2.10] blocked using zen.spamhaus.org", stage="rcpt")
    assert not blocked.is_failover
    assert blocked.counts_against_server
    assert not classify(550, "5.1.1 User unknown", stage="rcpt").is_failover


def test_a_reply_without_a_stage_or_code_is_unknown() -> None:
    outcome = classify(None, "")
    assert (outcome.status, outcome.category) == (U, Category.UNKNOWN)


def test_an_intermediate_code_as_a_final_answer_is_not_a_verdict() -> None:
    assert classify(354, "354 End data with <CR><LF>.<CR><LF>", stage="data").status is U
    assert classify(334, "334 VXNlcm5hbWU6", stage="auth").category is SERVER


def test_it_rejects_a_misspelled_stage() -> None:
    with pytest.raises(ValueError, match="unknown SMTP stage 'rcpt_to'"):
        classify(250, "250 OK", stage="rcpt_to")


def test_retry_after_can_be_attached_to_an_outcome() -> None:
    outcome = classify(421, "421 4.7.0 Try again later", stage="rcpt").with_retry_after(30.0)
    assert isinstance(outcome, Outcome)
    assert outcome.retry_after == 30.0
    assert outcome.category is POLICY
