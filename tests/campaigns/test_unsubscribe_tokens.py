from __future__ import annotations

import re

import pytest
from pytest_django.fixtures import SettingsWrapper
from django.core import signing

from campaigns.unsubscribe import (
    SALT,
    UnsubscribeClaim,
    make_token,
    read_token,
    token_from_mailto_address,
    unsubscribe_mailto,
    unsubscribe_url,
)

# Both a URL path segment and an RFC 5322 dot-atom local part.
DOT_ATOM_URL_SAFE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\Z")


def test_a_token_round_trips_its_claim() -> None:
    token = make_token(email="jane@example.com", message_id=981, campaign_id=12)
    assert read_token(token) == UnsubscribeClaim(email="jane@example.com", message_id=981, campaign_id=12)


def test_a_token_without_message_or_campaign_round_trips() -> None:
    token = make_token(email="josé@exämple.com", message_id=None, campaign_id=None)
    assert read_token(token) == UnsubscribeClaim(email="josé@exämple.com", message_id=None, campaign_id=None)


def test_a_token_is_url_safe_and_a_valid_mail_local_part() -> None:
    token = make_token(email="a.very+long.address@sub.example.co.uk", message_id=2**40, campaign_id=99999)
    assert DOT_ATOM_URL_SAFE.match(token)


def test_a_token_with_an_altered_signature_is_refused() -> None:
    token = make_token(email="jane@example.com", message_id=1, campaign_id=1)
    payload, signature = token.rsplit(".", 1)
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert read_token(f"{payload}.{flipped}") is None


def test_a_token_whose_payload_was_swapped_is_refused() -> None:
    mine = make_token(email="mallory@example.com", message_id=1, campaign_id=1)
    victim = make_token(email="victim@example.com", message_id=2, campaign_id=1)
    assert read_token(victim.split(".")[0] + "." + mine.split(".")[1]) is None


@pytest.mark.parametrize(
    "garbled",
    ["", "preview", "abc.def", "....", "WyJhIl0", "WyJhIl0.", ".sig", "é.ü", "x" * 5000, "%%%.%%%"],
)
def test_garbled_tokens_are_refused(garbled: str) -> None:
    assert read_token(garbled) is None


def test_a_token_from_another_salt_is_refused() -> None:
    other = signing.Signer(salt="mailops.something-else", sep=".", algorithm="sha256")
    assert read_token(other.sign_object(["jane@example.com", 1, 1])) is None


def test_a_token_made_with_another_secret_is_refused(settings: SettingsWrapper) -> None:
    settings.SECRET_KEY = "first-secret-" + "x" * 40
    token = make_token(email="jane@example.com", message_id=1, campaign_id=1)
    settings.SECRET_KEY = "second-secret-" + "y" * 40
    assert read_token(token) is None


def test_a_validly_signed_payload_of_the_wrong_shape_is_refused() -> None:
    signer = signing.Signer(salt=SALT, sep=".", algorithm="sha256")
    for payload in [{"email": "a@b.c"}, ["a@b.c", 1], ["not-an-email", 1, 1], ["a@b.c", "1", 1], ["a@b.c", True, None]]:
        assert read_token(signer.sign_object(payload)) is None


@pytest.mark.parametrize("bad", ["", "no-at-sign", None])
def test_making_a_token_needs_an_email_address(bad: object) -> None:
    with pytest.raises(ValueError):
        make_token(email=bad, message_id=1, campaign_id=1)  # type: ignore[arg-type]


def test_the_url_is_under_the_public_base_url(settings: SettingsWrapper) -> None:
    settings.MAILOPS = {**settings.MAILOPS, "PUBLIC_BASE_URL": "https://mail.example.com/"}
    token = make_token(email="jane@example.com", message_id=1, campaign_id=2)
    assert unsubscribe_url(token) == f"https://mail.example.com/u/{token}/"


def test_the_mailto_carries_the_token_and_reads_back(settings: SettingsWrapper) -> None:
    settings.MAILOPS = {**settings.MAILOPS, "UNSUBSCRIBE_MAILTO_DOMAIN": "unsub.example.com"}
    token = make_token(email="jane@example.com", message_id=5, campaign_id=None)
    mailto = unsubscribe_mailto(token)
    assert mailto == f"mailto:u-{token}@unsub.example.com?subject=unsubscribe"
    recipient = mailto.removeprefix("mailto:").split("?")[0]
    found = token_from_mailto_address(f"<{recipient}>")
    assert found == token
    assert read_token(found) == UnsubscribeClaim(email="jane@example.com", message_id=5, campaign_id=None)


def test_an_inbound_address_without_the_prefix_has_no_token() -> None:
    assert token_from_mailto_address("postmaster@unsub.example.com") is None
    assert token_from_mailto_address("u-@unsub.example.com") is None
    assert token_from_mailto_address("not an address") is None
