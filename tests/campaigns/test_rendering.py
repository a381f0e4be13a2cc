from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from pytest_django.fixtures import SettingsWrapper
import time_machine

from campaigns.headers import HeaderInjection, InvalidAddress, parse_verp
from campaigns.rendering import (
    CompiledMessage,
    InvalidMessage,
    MergeTemplate,
    RecipientRefused,
    RenderedMessage,
    render_preview,
)
from campaigns.unsubscribe import make_token, read_mailto_address, read_token

STRICT = email.policy.default.clone(raise_on_defect=True)
POSTAL = "Acme Outreach S.L.\nCalle <Mayor> 1, 28013 Madrid"


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=STRICT)
    assert isinstance(message, EmailMessage)
    for part in message.walk():
        assert not part.defects
    return message


def body(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert part is not None
    # On the wire text lines end in CRLF; compare with "\n" like the templates.
    return str(part.get_content()).replace("\r\n", "\n")


def compile_campaign(**overrides: Any) -> CompiledMessage:
    options: dict[str, Any] = {
        "subject": "{{ first_name|default:'Hola' }}, a note for {{ company }}",
        "html": "<html><body><h1>Hi {{ name }}</h1><p>At {{company}} you use {{ tool }}.</p></body></html>",
        "text": "Hi {{ name }},\nAt {{ company }} you use {{ tool }}.\n",
        "from_email": "sales@example.com",
        "from_name": "Acme Sales",
        "reply_to": "replies@example.com",
        "headers": {"X-Campaign": "spring-2025"},
        "postal_address": POSTAL,
        "bounce_domain": "bounces.example.com",
    }
    options.update(overrides)
    return CompiledMessage.compile(**options)


def render(compiled: CompiledMessage, recipient: dict[str, Any] | None = None, pk: int = 41) -> RenderedMessage:
    recipient = recipient or {"email": "ana@example.org", "name": "Ana Ruiz", "company": "Globex", "custom": {"tool": "Excel"}}
    token = make_token(email=str(recipient.get("email")), message_id=pk, campaign_id=3)
    return compiled.render(recipient, message_pk=pk, unsubscribe_token=token)


# MergeTemplate


def test_placeholders_tolerate_whitespace() -> None:
    template = MergeTemplate.compile("{{name}}|{{ name }}|{{   name\t}}", html=False)
    assert template.render({"name": "Ana"}) == "Ana|Ana|Ana"
    assert template.fields == {"name"}


def test_unknown_and_empty_fields_render_as_nothing_or_their_default() -> None:
    template = MergeTemplate.compile(
        "[{{ missing }}] [{{ name|default:\"amigo\" }}] [{{ name | default : 'friend' }}]", html=False
    )
    assert template.render({}) == "[] [amigo] [friend]"
    assert template.render({"name": ""}) == "[] [amigo] [friend]"
    assert template.render({"name": None}) == "[] [amigo] [friend]"
    assert template.render({"name": "Ana"}) == "[] [Ana] [Ana]"


def test_non_string_values_are_rendered_as_text() -> None:
    assert MergeTemplate.compile("{{ n }} seats", html=False).render({"n": 12}) == "12 seats"


def test_html_mode_escapes_every_value_and_default() -> None:
    template = MergeTemplate.compile('<a title="{{ name }}">{{ name }}</a>{{ x|default:"Tom & Jerry" }}', html=True)
    rendered = template.render({"name": '<script>alert("x")</script>'})
    assert rendered == (
        '<a title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;">'
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</a>Tom &amp; Jerry"
    )


def test_text_mode_leaves_values_alone() -> None:
    assert MergeTemplate.compile("{{ name }}", html=False).render({"name": "<b>&</b>"}) == "<b>&</b>"


def test_template_tags_and_attribute_lookups_stay_inert_text(settings: SettingsWrapper) -> None:
    source = "{% load static %}{% debug %}{{ settings.SECRET_KEY }}{{ request.user }}{{ name.__class__ }}{{ SECRET_KEY }}"
    template = MergeTemplate.compile(source, html=True)
    rendered = template.render({"name": "Ana"})
    assert rendered == "{% load static %}{% debug %}{{ settings.SECRET_KEY }}{{ request.user }}{{ name.__class__ }}"
    assert settings.SECRET_KEY not in rendered
    assert template.fields == {"SECRET_KEY"}


def test_a_merge_value_that_looks_like_a_placeholder_is_not_expanded_again() -> None:
    template = MergeTemplate.compile("{{ name }}", html=False)
    assert template.render({"name": "{{ secret }}", "secret": "leak"}) == "{{ secret }}"


# CompiledMessage: structure


def test_a_rendered_campaign_message_has_every_header_well_formed(settings: SettingsWrapper) -> None:
    settings.MAILOPS = {**settings.MAILOPS, "PUBLIC_BASE_URL": "https://mail.example.com"}
    rendered = render(compile_campaign())
    message = parse(rendered.data)

    assert message["From"].addresses[0].display_name == "Acme Sales"
    assert message["From"].addresses[0].addr_spec == "sales@example.com"
    assert message["To"].addresses[0].addr_spec == "ana@example.org"
    assert message["To"].addresses[0].display_name == "Ana Ruiz"
    assert message["Reply-To"].addresses[0].addr_spec == "replies@example.com"
    assert message["Subject"] == "Ana, a note for Globex"
    assert message["Date"].datetime.tzinfo is not None
    assert message["Message-ID"] == rendered.message_id
    assert rendered.message_id.endswith("@example.com>")
    assert message["MIME-Version"] == "1.0"
    assert message["X-Mailops-Message"] == "41"
    assert message["X-Campaign"] == "spring-2025"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    uris = [uri.strip().strip("<>") for uri in str(message["List-Unsubscribe"]).split(",")]
    assert len(uris) == 2
    url, mailto = uris
    assert url.startswith("https://mail.example.com/u/") and url.endswith("/")
    assert mailto.startswith("mailto:u-") and mailto.endswith("?subject=unsubscribe")
    claim = read_token(url.removeprefix("https://mail.example.com/u/").rstrip("/"))
    assert claim is not None and claim.email == "ana@example.org" and claim.message_id == 41
    mailed = read_mailto_address(mailto.removeprefix("mailto:").split("?")[0])
    assert mailed is not None and mailed.message_id == 41 and mailed.is_for("ana@example.org")


def test_the_header_section_is_ascii_and_lines_stay_short() -> None:
    rendered = render(compile_campaign(subject="Ünïcödé " * 12, from_name="Équipe Ventes"))
    head = rendered.data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    for line in head.split(b"\r\n"):
        # The List-Unsubscribe URIs cannot be broken; everything else keeps to 78.
        assert len(line) <= 998
        if not line.lstrip().startswith(b"<") and not line.startswith(b"List-Unsubscribe:"):
            assert len(line) <= 78, line


def test_every_line_uses_crlf_and_body_lines_stay_within_76() -> None:
    long_text = "word " * 200 + "\n" + "x" * 300
    rendered = render(compile_campaign(text=long_text + "{{ name }}"))
    data = rendered.data
    assert b"\n" not in data.replace(b"\r\n", b"")
    wire = data.split(b"\r\n\r\n", 1)[1]
    assert all(len(line) <= 76 for line in wire.split(b"\r\n"))


def test_the_body_is_multipart_alternative_with_text_then_html() -> None:
    message = parse(render(compile_campaign()).data)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    assert all(part["Content-Transfer-Encoding"] == "quoted-printable" for part in parts)
    assert "At Globex you use Excel." in parts[0].get_content()
    assert "<p>At Globex you use Excel.</p>" in parts[1].get_content()


def test_message_ids_are_unique_across_renders() -> None:
    compiled = compile_campaign()
    ids = {render(compiled, pk=pk).message_id for pk in range(200)}
    assert len(ids) == 200


def test_the_date_is_the_current_time_in_rfc5322_form() -> None:
    with time_machine.travel(datetime(2025, 3, 9, 14, 5, 7, tzinfo=UTC), tick=False):
        message = parse(render(compile_campaign()).data)
    assert message["Date"].datetime == datetime(2025, 3, 9, 14, 5, 7, tzinfo=UTC)
    assert str(message["Date"]) == "Sun, 09 Mar 2025 14:05:07 +0000"


def test_non_ascii_subject_and_names_round_trip() -> None:
    compiled = compile_campaign(subject="¿{{ first_name }}, hablamos de {{ company }}? 🚀", from_name="Équipe Ñandú")
    recipient = {"email": "jose@example.org", "name": "José Müller", "company": "Café Über", "custom": {"tool": "Ñ"}}
    rendered = render(compiled, recipient)
    message = parse(rendered.data)
    assert message["Subject"] == "¿José, hablamos de Café Über? 🚀"
    assert rendered.subject == "¿José, hablamos de Café Über? 🚀"
    assert message["To"].addresses[0].display_name == "José Müller"
    assert message["From"].addresses[0].display_name == "Équipe Ñandú"
    assert "Hi José Müller" in body(message, "plain")


def test_html_merge_values_are_escaped_but_text_ones_are_not() -> None:
    recipient = {"email": "eve@example.org", "name": "<script>alert(1)</script>", "company": "A&B", "custom": {}}
    rendered = render(compile_campaign(), recipient)
    message = parse(rendered.data)
    html = body(message, "html")
    assert "<h1>Hi &lt;script&gt;alert(1)&lt;/script&gt;</h1>" in html
    assert "<script>" not in html
    assert "At A&amp;B" in html
    assert "Hi <script>alert(1)</script>" in body(message, "plain")


def test_template_code_in_campaign_content_renders_harmlessly(settings: SettingsWrapper) -> None:
    compiled = compile_campaign(
        subject="{{ settings.SECRET_KEY }} {% now 'Y' %}",
        html="<p>{% load static %}{{ settings.SECRET_KEY }}{{ SECRET_KEY }}{% include 'x.html' %}</p>",
        text="{% debug %}{{ settings.SECRET_KEY }}{{ SECRET_KEY }}",
    )
    rendered = render(compiled)
    assert settings.SECRET_KEY.encode() not in rendered.data
    assert rendered.subject == "{{ settings.SECRET_KEY }} {% now 'Y' %}"
    assert "{% load static %}{{ settings.SECRET_KEY }}{% include 'x.html' %}" in rendered.html
    assert rendered.text.startswith("{% debug %}{{ settings.SECRET_KEY }}\n")


def test_custom_fields_merge_but_cannot_replace_the_unsubscribe_link() -> None:
    compiled = compile_campaign(text="Plan: {{ plan }} / link: {{ unsubscribe_url }}")
    recipient = {
        "email": "ana@example.org",
        "name": "Ana",
        "custom": {"plan": "Pro", "unsubscribe_url": "https://evil.example/", "email": "other@example.org"},
    }
    rendered = render(compiled, recipient)
    assert "Plan: Pro / link: http" in rendered.text
    assert "evil.example" not in rendered.text
    assert rendered.recipient == "ana@example.org"


# Footer


def test_both_bodies_get_an_unsubscribe_footer_with_the_postal_address() -> None:
    rendered = render(compile_campaign())
    message = parse(rendered.data)
    url = str(message["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
    text = body(message, "plain")
    html = body(message, "html")
    assert f"Unsubscribe: {url}" in text
    assert "Calle <Mayor> 1, 28013 Madrid" in text
    assert f'<a href="{url}"' in html
    assert "Calle &lt;Mayor&gt; 1, 28013 Madrid" in html
    assert "Acme Outreach S.L.<br>Calle" in html


def test_the_html_footer_goes_inside_the_body_element() -> None:
    html = render(compile_campaign()).html
    assert html.endswith("</body></html>")
    assert html.index("Unsubscribe</a>") < html.index("</body>")


def test_an_html_fragment_gets_the_footer_appended() -> None:
    html = render(compile_campaign(html="<p>Hi {{ name }}</p>")).html
    assert html.startswith("<p>Hi Ana Ruiz</p>")
    assert "Unsubscribe</a>" in html


def test_a_body_line_starting_with_a_dot_or_from_survives() -> None:
    text = ".\n.hidden\nFrom here on\n"
    message = parse(render(compile_campaign(text=text)).data)
    assert body(message, "plain").startswith(text)
    wire = render(compile_campaign(text=text)).data.split(b"\r\n\r\n", 1)[1]
    assert b"\r\n." not in wire and b"\r\nFrom " not in wire


def test_a_merge_value_cannot_forge_a_mime_boundary() -> None:
    compiled = compile_campaign()
    probe = render(compiled).data
    boundary = probe.split(b'boundary="', 1)[1].split(b'"', 1)[0].decode()
    forged = f"x\n--{boundary}\nContent-Type: text/html\n\n<b>evil</b>\n--{boundary}--\n"
    recipient = {"email": "ana@example.org", "name": "Ana", "company": "Globex", "custom": {"tool": forged}}
    message = parse(render(compiled, recipient).data)
    assert len(list(message.iter_parts())) == 2
    assert f"you use {forged}." in body(message, "plain")


# Refusals


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Hello\r\nBcc: everyone@example.com"),
        ("from_name", "Sales\nBcc: everyone@example.com"),
        ("reply_to", "r@example.com\r\nBcc: everyone@example.com"),
        ("from_email", "sales@example.com\nBcc: x@example.com"),
    ],
)
def test_header_injection_in_static_parts_is_refused_at_compile_time(field: str, value: str) -> None:
    with pytest.raises(HeaderInjection):
        compile_campaign(**{field: value})


def test_header_injection_in_extra_headers_is_refused() -> None:
    with pytest.raises(HeaderInjection, match="X-Campaign"):
        compile_campaign(headers={"X-Campaign": "a\r\nBcc: x@example.com"})
    with pytest.raises(HeaderInjection):
        compile_campaign(headers={"X-Campaign\r\nBcc": "a"})


@pytest.mark.parametrize("name", ["Bcc", "list-unsubscribe", "Content-Type", "X-Mailops-Message", "Subject"])
def test_extra_headers_cannot_override_the_builders_own(name: str) -> None:
    with pytest.raises(InvalidMessage, match="set by mailops"):
        compile_campaign(headers={name: "x"})


def test_a_message_without_subject_or_body_does_not_compile() -> None:
    with pytest.raises(InvalidMessage, match="subject"):
        compile_campaign(subject="  ")
    with pytest.raises(InvalidMessage, match="no body"):
        compile_campaign(html="", text=" ")


def test_marketing_mail_needs_a_postal_address() -> None:
    with pytest.raises(InvalidMessage, match="postal address"):
        compile_campaign(postal_address="")


def test_an_invalid_sender_address_does_not_compile() -> None:
    with pytest.raises(InvalidAddress):
        compile_campaign(from_email="not an address")


@pytest.mark.parametrize("evil", ["Globex\r\nBcc: all@example.com", "Globex\nX: y", "Globex\u2028", "Glo\x00bex"])
def test_a_subject_merge_value_with_a_line_break_refuses_the_recipient(evil: str) -> None:
    recipient = {"email": "ana@example.org", "name": "Ana", "company": evil}
    with pytest.raises(RecipientRefused, match="Subject") as refused:
        render(compile_campaign(), recipient)
    assert "merge data" in refused.value.reason


def test_a_recipient_name_with_a_line_break_is_refused() -> None:
    recipient = {"email": "ana@example.org", "name": "Ana\r\nBcc: all@example.com", "company": "Globex"}
    with pytest.raises(RecipientRefused, match="To name"):
        render(compile_campaign(), recipient)


@pytest.mark.parametrize("address", ["ana@example.org\r\nBcc: x@example.com", "", "josé@example.org", None])
def test_a_recipient_address_that_cannot_be_written_is_refused(address: object) -> None:
    with pytest.raises(RecipientRefused):
        compile_campaign().render({"email": address, "name": "Ana"}, message_pk=1, unsubscribe_token="t")


def test_line_breaks_in_body_merge_values_are_just_text() -> None:
    recipient = {"email": "ana@example.org", "name": "Ana", "company": "Globex", "custom": {"tool": "a\r\nBcc: x"}}
    compiled = compile_campaign(subject="Static subject")
    message = parse(render(compiled, recipient).data)
    assert message["Bcc"] is None
    assert "you use a\nBcc: x." in body(message, "plain")


# VERP, transactional, variants, preview


def test_the_envelope_sender_is_a_verp_address_for_the_message() -> None:
    rendered = render(compile_campaign(), pk=987654)
    assert rendered.envelope_from.endswith("@bounces.example.com")
    assert parse_verp(rendered.envelope_from) == 987654


def test_a_transactional_send_has_no_unsubscribe_headers_or_footer() -> None:
    compiled = compile_campaign(list_unsubscribe=False, postal_address="")
    rendered = compiled.render({"email": "ana@example.org", "name": "Ana"}, message_pk=5)
    message = parse(rendered.data)
    assert message["List-Unsubscribe"] is None
    assert message["List-Unsubscribe-Post"] is None
    assert message["X-Mailops-Message"] == "5"
    assert "Unsubscribe" not in rendered.text and "Unsubscribe" not in rendered.html


def test_a_campaign_render_needs_an_unsubscribe_token() -> None:
    with pytest.raises(ValueError, match="unsubscribe_token"):
        compile_campaign().render({"email": "ana@example.org"}, message_pk=1)


def test_a_text_only_message_is_a_single_text_part() -> None:
    rendered = render(compile_campaign(html=""))
    message = parse(rendered.data)
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert "Hi Ana Ruiz," in message.get_content()
    assert "Unsubscribe: http" in message.get_content()
    assert rendered.html == ""


def test_an_html_only_message_gets_a_derived_text_part() -> None:
    compiled = compile_campaign(
        text="",
        html='<html><head><style>p{color:red}</style></head><body><p>Hi {{ name }} &amp; team</p>'
        '<p>See <a href="https://example.com/{{ company }}">our plans</a></p></body></html>',
    )
    message = parse(render(compiled).data)
    text = body(message, "plain")
    assert "Hi Ana Ruiz & team" in text
    assert "our plans (https://example.com/Globex)" in text
    assert "<p>" not in text and "color:red" not in text


def test_fields_lists_the_merge_fields_a_campaign_uses() -> None:
    compiled = compile_campaign(html="<p>{{ unsubscribe_url }} {{ plan }}</p>")
    assert compiled.fields == {"first_name", "company", "name", "tool", "plan"}


def test_a_preview_renders_a_sample_prospect_with_a_token_that_unsubscribes_nobody() -> None:
    rendered = render_preview(compile_campaign())
    message = parse(rendered.data)
    assert message["Subject"] == "Jane, a note for Example Inc."
    url = str(message["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert read_token(token) is None


def test_a_preview_can_use_a_given_prospect() -> None:
    rendered = render_preview(compile_campaign(), {"email": "bo@example.org", "name": "Bo", "company": "Initech"})
    assert rendered.subject == "Bo, a note for Initech"
    assert rendered.headers["To"] == "Bo <bo@example.org>"
