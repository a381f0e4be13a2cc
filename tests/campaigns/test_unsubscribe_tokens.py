from __future__ import annotations

import re

import pytest
from pytest_django.fixtures import SettingsWrapper
from django.core import signing

from campaigns.unsubscribe import (
    SALT,
    MailtoClaim,
    UnsubscribeClaim,
    make_token,
    read_mailto_address,
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


def test_the_mailto_local_part_is_short_lowercase_and_names_the_message(settings: SettingsWrapper) -> None:
    settings.MAILOPS = {**settings.MAILOPS, "UNSUBSCRIBE_MAILTO_DOMAIN": "unsub.example.com"}
    mailto = unsubscribe_mailto(message_id=2**63 - 1, email="a.very+long.address@sub.example.co.uk")

    address, _, query = mailto.removeprefix("mailto:").partition("?")
    local, _, domain = address.rpartition("@")
    assert query == "subject=unsubscribe" and domain == "unsub.example.com"
    assert len(local.encode()) <= 64, "RFC 5321 caps a local part at 64 octets"
    assert re.fullmatch(r"u-\d+-[a-z2-7]+", local)
    assert read_mailto_address(address) == MailtoClaim(message_id=2**63 - 1, mac=local.rsplit("-", 1)[1])


def test_a_mailto_address_verifies_for_its_recipient_whatever_its_case() -> None:
    address = unsubscribe_mailto(message_id=5, email="Jane@Example.com").removeprefix("mailto:").split("?")[0]

    for seen in (address, address.upper(), f"<{address.upper()}>"):
        claim = read_mailto_address(seen)
        assert claim is not None and claim.message_id == 5
        assert claim.is_for("jane@example.com")


def test_a_forged_or_borrowed_mailto_address_is_refused() -> None:
    address = unsubscribe_mailto(message_id=5, email="jane@example.com").removeprefix("mailto:").split("?")[0]
    local, _, domain = address.partition("@")
    claim = read_mailto_address(address)
    assert claim is not None

    assert not claim.is_for("victim@example.com")
    other = read_mailto_address(local.replace("u-5-", "u-6-") + "@" + domain)
    assert other is not None and not other.is_for("jane@example.com")
    flipped = local[:-1] + ("a" if local[-1] != "a" else "b")
    assert not read_mailto_address(f"{flipped}@{domain}").is_for("jane@example.com")  # type: ignore[union-attr]


def test_a_mailto_address_made_with_a_retired_secret_still_verifies(settings: SettingsWrapper) -> None:
    settings.SECRET_KEY = "first-secret-" + "x" * 40
    address = unsubscribe_mailto(message_id=9, email="jane@example.com").removeprefix("mailto:").split("?")[0]
    settings.SECRET_KEY = "second-secret-" + "y" * 40
    settings.SECRET_KEY_FALLBACKS = ["first-secret-" + "x" * 40]

    assert read_mailto_address(address).is_for("jane@example.com")  # type: ignore[union-attr]
    settings.SECRET_KEY_FALLBACKS = []
    assert not read_mailto_address(address).is_for("jane@example.com")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "address",
    ["postmaster@unsub.example.com", "u-@unsub.example.com", "u-5@unsub.example.com", "u-x-abc@unsub.example.com",
     "not an address", "u-5-" + "a" * 15 + "@unsub.example.com", "b-5-" + "a" * 16 + "@unsub.example.com"],
)
def test_an_inbound_address_of_another_shape_has_no_claim(address: str) -> None:
    assert read_mailto_address(address) is None


def test_a_mailto_sent_before_the_short_form_still_carries_its_signed_token() -> None:
    # Mail already in inboxes has u-<signed token>; the token still names its address.
    token = make_token(email="jane@example.com", message_id=5, campaign_id=None)

    assert token_from_mailto_address(f"<u-{token}@unsub.example.com>") == token
    assert token_from_mailto_address("postmaster@unsub.example.com") is None
    assert token_from_mailto_address("u-@unsub.example.com") is None
