"""Accessible markup on every page: each control has a name a screen reader can read out,
images have alternative text, pages declare their language and have one main landmark."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from tests.dashboard.test_pages import pages

pytestmark = pytest.mark.django_db

CONTROLS = {"input", "select", "textarea"}
UNNAMED_INPUTS = {"hidden", "submit", "button", "reset", "image"}


class Markup(HTMLParser):
    """Collects what the checks need in one pass."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.controls: list[dict[str, str]] = []
        self.label_for: set[str] = set()
        self.label_depth = 0
        self.images: list[dict[str, str]] = []
        self.buttons: list[dict[str, str]] = []  # attributes plus the text inside
        self.open_button: dict[str, str] | None = None
        self.html_lang: str | None = None
        self.mains = 0

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.html_lang = a.get("lang", "")
        elif tag == "main":
            self.mains += 1
        elif tag == "label":
            self.label_depth += 1
            if a.get("for"):
                self.label_for.add(a["for"])
        elif tag in CONTROLS:
            if tag == "input" and a.get("type", "text") in UNNAMED_INPUTS:
                if a.get("type") in ("submit", "button", "reset"):
                    self.buttons.append({**a, "text": a.get("value", "")})
                return
            self.controls.append({**a, "tag": tag, "inside_label": str(self.label_depth > 0)})
        elif tag == "img":
            self.images.append(a)
        elif tag == "button":
            self.open_button = {**a, "text": ""}

    def handle_endtag(self, tag):
        if tag == "label":
            self.label_depth = max(0, self.label_depth - 1)
        elif tag == "button" and self.open_button is not None:
            self.buttons.append(self.open_button)
            self.open_button = None

    def handle_data(self, data):
        if self.open_button is not None:
            self.open_button["text"] += data.strip()


def problems(html: str, *, full_page: bool) -> list[str]:
    markup = Markup()
    markup.feed(html)
    found = []
    for c in markup.controls:
        named = c["inside_label"] == "True" or c.get("id") in markup.label_for or c.get("aria-label") or c.get("aria-labelledby") or c.get("title")
        if not named:
            found.append(f"<{c['tag']} name={c.get('name')!r}> has no label")
    found += [f"<img src={i.get('src')!r}> has no alt" for i in markup.images if "alt" not in i]
    found += [
        f"<button {b}> has no text or aria-label"
        for b in markup.buttons
        if not (b["text"] or b.get("aria-label") or b.get("title"))
    ]
    if full_page:
        if not markup.html_lang:
            found.append("<html> has no lang")
        if markup.mains != 1:
            found.append(f"{markup.mains} <main> landmarks, expected 1")
    return found


def test_every_page_and_partial_has_accessible_markup(operator_client, world):
    checked = 0
    for url, _ in pages(world):
        response = operator_client.get(url)
        html = response.content.decode()
        full_page = "<html" in html
        assert problems(html, full_page=full_page) == [], url
        checked += 1
    assert checked == len(pages(world))


def test_the_check_finds_what_it_looks_for():
    bad = '<html><body><input name="q"><img src="x.png"><button></button></body></html>'
    assert problems(bad, full_page=True) == [
        "<input name='q'> has no label",
        "<img src='x.png'> has no alt",
        "<button {'text': ''}> has no text or aria-label",
        "<html> has no lang",
        "0 <main> landmarks, expected 1",
    ]
    good = '<html lang="en"><main><label>Search <input name="q"></label><img src="x" alt=""><button>Go</button></main></html>'
    assert problems(good, full_page=True) == []


def test_the_sign_in_and_unsubscribe_pages_have_accessible_markup(client):
    from campaigns.unsubscribe import make_token

    for url in ["/login/", f"/u/{make_token(email='ana@example.com', message_id=None, campaign_id=None)}/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert problems(response.content.decode(), full_page=True) == [], url
