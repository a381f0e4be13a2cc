"""Every text a template marks for translation has a Spanish translation.

The seed's operators write Spanish, and so do most of the recipients who land on the
unsubscribe page: a string left out of locale/es silently shows English to them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from django.conf import settings
from django.utils.translation import trans_real
from django.utils.translation.template import templatize

TEMPLATE_DIRS = [Path(settings.BASE_DIR) / "templates", Path(settings.BASE_DIR) / "dashboard" / "templates"]
# Django's admin ships its own catalog; our admin overrides follow the admin's English.
SKIP = {"admin"}
CALL = re.compile(r"\b(gettext|pgettext|ngettext|npgettext)\((u?'(?:[^'\\]|\\.)*'(?:,\s*u?'(?:[^'\\]|\\.)*')*)")


def marked_strings(path: Path) -> list[str]:
    """Catalog keys of the strings a template marks, through Django's own makemessages step."""
    keys = []
    for function, args in CALL.findall(templatize(path.read_text(), origin=str(path))):
        texts = [ast.literal_eval(a.strip()) for a in re.findall(r"u?'(?:[^'\\]|\\.)*'", args)]
        if function == "gettext":
            keys.append(texts[0])
        elif function == "pgettext":
            keys.append(f"{texts[0]}\x04{texts[1]}")
        elif function == "ngettext":
            keys.append((texts[0], 0))
        else:
            keys.append((f"{texts[0]}\x04{texts[1]}", 0))
    return keys


def test_every_template_string_has_a_spanish_translation():
    catalog = trans_real.translation("es")._catalog
    templates = [p for d in TEMPLATE_DIRS for p in d.rglob("*.html") if not SKIP & set(p.relative_to(d).parts)]
    marked = {(str(p.relative_to(settings.BASE_DIR)), key) for p in templates for key in marked_strings(p)}

    assert len(marked) > 300  # the extraction itself works
    missing = sorted((path, str(key)) for path, key in marked if key not in catalog)
    assert missing == [], f"add these to locale/es/LC_MESSAGES/django.po and run msgfmt: {missing}"
