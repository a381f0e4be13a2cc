"""Turn an SMTP reply (or its absence) into an Outcome.

The reply code says little on its own: 550 is used for "no such user", "you are
on a blocklist" and "message too big" alike. The RFC 3463 enhanced code, when
the server sends one, is far more precise, so it is read from the text first and
the wording only fills in when the code is missing or generic.

The categories decide who pays. Getting HARD wrong suppresses a real person for
good, so it needs a specific signal; getting POLICY wrong hides a blocklisted IP,
so any mention of a blocklist wins over everything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from servers.outcome import Category, Outcome, Status

# Our own relay refusing us before any message is involved: the server is at
# fault, not the message, so the message goes to another server.
SERVER_STAGES = frozenset({"connect", "tls", "auth", "helo"})
STAGES = SERVER_STAGES | {"mail", "rcpt", "data"}

# RFC 3463: class.subject.detail, subject and detail up to three digits.
_ENHANCED = r"[245]\.\d{1,3}\.\d{1,3}"
# A code right after the reply code ("550-5.1.1 ", "550 5.1.1 ") or at the
# start of a line whose reply code a client library already stripped.
_LEADING = re.compile(rf"^\s*(?:(?P<code>[2-5]\d\d)(?:[ -]|$))?\s*#?(?P<enhanced>{_ENHANCED})(?![\w.]|\.\d)")
_LINE_CODE = re.compile(r"^\s*(?P<code>[2-5]\d\d)(?:[ -]|$)")
# Anywhere else ("450 cuda_nsu 4.7.1 ...", "(#5.1.1)"). Bounded so that IP
# addresses and version numbers ("Postfix 2.10.1.3") do not match.
_ANYWHERE = re.compile(rf"(?<![\w.])#?(?P<enhanced>{_ENHANCED})(?![\w.]|\.\d)")
_EMBEDDED = re.compile(rf"(?<![\w.])(?P<code>[245]\d\d)[ -](?P<enhanced>{_ENHANCED})(?![\w.]|\.\d)")
# RFC 3464 diagnostic type prefix, as found in DSN Diagnostic-Code fields.
_DIAGNOSTIC_TYPE = re.compile(r"^\s*(?:smtp|x-[\w-]+)\s*;\s*", re.IGNORECASE)

_BLOCKLIST = re.compile(
    r"spamhaus|barracuda|spamcop|\bsorbs\b|uceprotect|spamrats|\bpsbl\b|\bsurbl\b|cloudmark"
    r"|block\s?list|black\s?list|deny\s?list|\bdnsbl\b|\brbl\b|blocked\s+using"
    r"|\blisted\s+(?:in|on|at|by)\b|ipcheck\.proofpoint",
    re.IGNORECASE,
)
# Wording of "this address does not exist". Only trusted where the enhanced code
# does not already say something more specific.
_NO_SUCH_USER = re.compile(
    r"user\s+unknown|unknown\s+user|no\s+such\s+(?:user|mailbox|recipient|address|account)"
    r"|mailbox\s+unavailable|mailbox\s+not\s+found|recipient\s+not\s+found|address\s+not\s+found"
    r"|does\s*(?:not|n'?t)\s+(?:exist|have\s+an?\s+\S+\s+account)|doesn'?t\s+exist"
    r"|not\s+a\s+valid\s+(?:user|mailbox|recipient)"
    r"|invalid\s+(?:recipient|mailbox|user)|unknown\s+(?:recipient|mailbox|address)|recipient\s+unknown"
    r"|no\s+mailbox\s+here|account\s+(?:has\s+been\s+)?(?:disabled|deleted|closed)|is\s+not\s+a\s+known\s+user",
    re.IGNORECASE,
)
_MAILBOX_FULL = re.compile(
    r"mailbox\s+(?:is\s+)?full|over\s*quota|quota\s+exceeded|exceed(?:ed|s)?\s+(?:its\s+|the\s+)?(?:storage|quota)"
    r"|insufficient\s+storage|storage\s+allocation|mailbox\s+size\s+limit",
    re.IGNORECASE,
)
# Replies about our envelope sender, which some servers give at RCPT time
# (Postfix's delayed restrictions, Exim's sender callouts) with a 5.1.x code.
_ABOUT_SENDER = re.compile(
    r"sender\s+(?:address\s+)?(?:rejected|verify\s+failed|verification\s+failed)|sender\s+verify",
    re.IGNORECASE,
)
# RFC 3463 X.1.7 and X.1.8 are about the *sender's* address, not the recipient's.
_SENDER_ADDRESS_DETAILS = frozenset({"7", "8"})
# Codes that carry no information beyond the class, so the wording decides.
_GENERIC_SUBJECT_DETAIL = frozenset({("0", "0"), ("5", "0")})


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP reply taken apart: code, enhanced code and the human words."""

    code: int | None
    enhanced: str
    message: str


def parse_reply(text: str, *, code: int | None = None) -> Reply:
    """Split a possibly multi-line reply into its parts.

    Accepts what servers send ("550-5.1.1 The email...\\n550 5.1.1 ..."), what
    client libraries keep (the same lines without the reply code), and DSN
    Diagnostic-Code values ("smtp; 550 5.1.1 <x@y>: ..."). ``code`` wins over a
    code found in the text, since a transport knows the code it was given.
    """
    body = _DIAGNOSTIC_TYPE.sub("", text or "", count=1)
    lines = [line for line in body.splitlines() if line.strip()]
    enhanced = ""
    words: list[str] = []
    for line in lines:
        leading = _LEADING.match(line)
        if leading:
            if code is None and leading.group("code"):
                code = int(leading.group("code"))
            enhanced = enhanced or leading.group("enhanced")
            line = line[leading.end() :]
        else:
            line_code = _LINE_CODE.match(line)
            if line_code:
                if code is None:
                    code = int(line_code.group("code"))
                line = line[line_code.end() :]
        words.append(line.strip())
    message = " ".join(" ".join(words).split())
    if code is None or not enhanced:
        # Prose around the reply ("host mx.example.com said: 550-5.1.1 ...").
        embedded = _EMBEDDED.search(message)
        if embedded and (code is None or embedded.group("code") == str(code)):
            code = int(embedded.group("code"))
            enhanced = enhanced or embedded.group("enhanced")
    if not enhanced:
        for match in _ANYWHERE.finditer(message):
            found = match.group("enhanced")
            if code is None or found[0] == str(code)[0]:
                enhanced = found
                break
    if code is not None and enhanced:
        # Folded DSN diagnostics keep the continuation prefixes mid-line
        # ("... Please try 550-5.1.1 double-checking ..."): they are noise.
        prefix = re.compile(rf"(?<!\S){code}[ -]{re.escape(enhanced)}(?!\S)\s*")
        message = prefix.sub("", message).strip()
    return Reply(code=code, enhanced=enhanced, message=message)


def names_blocklist(text: str) -> bool:
    return bool(_BLOCKLIST.search(text or ""))


def says_no_such_user(text: str) -> bool:
    return bool(_NO_SUCH_USER.search(text or ""))


def says_mailbox_full(text: str) -> bool:
    return bool(_MAILBOX_FULL.search(text or ""))


def classify(code: int | None, text: str, *, stage: str | None = None) -> Outcome:
    """Classify one reply. ``stage`` is the SMTP step that got it, if known.

    ``code`` None means no reply at all (refused, timed out, dropped). Before
    DATA that is the server's fault and safe to retry elsewhere; after DATA the
    message may already be on its way, so it is UNKNOWN and must not be resent.
    """
    if stage is not None and stage not in STAGES:
        raise ValueError(f"unknown SMTP stage {stage!r}; expected one of {sorted(STAGES)}")
    reply = parse_reply(text, code=code)
    return categorize(reply, stage=stage)


def categorize(reply: Reply, *, stage: str | None = None) -> Outcome:
    code, enhanced, message = reply.code, reply.enhanced, reply.message

    def outcome(status: Status, category: Category) -> Outcome:
        return Outcome(status=status, category=category, code=code, enhanced=enhanced, text=message)

    if code is None:
        if stage == "data" or stage is None:
            return outcome(Status.UNKNOWN, Category.UNKNOWN)
        return outcome(Status.DEFERRED, Category.SERVER)
    if 200 <= code < 300:
        return outcome(Status.ACCEPTED, Category.NONE)
    if not (400 <= code < 600):
        # A 1xx/3xx as a final answer is a protocol breakdown, not a verdict.
        if stage in SERVER_STAGES:
            return outcome(Status.DEFERRED, Category.SERVER)
        return outcome(Status.UNKNOWN, Category.UNKNOWN)

    temporary = code < 500
    status = Status.DEFERRED if temporary else Status.BOUNCED
    _, subject, detail = enhanced.split(".") if enhanced else ("", "", "")

    if names_blocklist(message):
        return outcome(status, Category.POLICY)
    if stage in SERVER_STAGES:
        # A refusal at the greeting on policy grounds ("554 5.7.1 access
        # denied") is about our IP's reputation; anything else there is our
        # relay failing, and the message is untouched, so it is never bounced.
        if stage in ("connect", "helo") and subject == "7":
            return outcome(status, Category.POLICY)
        return outcome(Status.DEFERRED, Category.SERVER)
    about_sender = stage == "mail" or bool(_ABOUT_SENDER.search(message))
    if subject == "7" and not temporary and not about_sender and says_no_such_user(message):
        # Some providers (Yandex: "550 5.7.1 No such user!") file unknown
        # users under policy; counting those against the server would pause a
        # healthy IP for its recipients' typos.
        return outcome(status, Category.HARD)
    if code == 421 or subject == "7":
        return outcome(status, Category.POLICY)
    if (subject, detail) == ("2", "2"):
        return outcome(Status.DEFERRED, Category.SOFT)
    if temporary:
        return outcome(status, Category.SOFT)

    if subject == "1":
        if about_sender or detail in _SENDER_ADDRESS_DETAILS:
            return outcome(status, Category.PERMANENT)
        return outcome(status, Category.HARD)
    if not enhanced or (subject, detail) in _GENERIC_SUBJECT_DETAIL:
        if says_mailbox_full(message):
            return outcome(Status.DEFERRED, Category.SOFT)
        if says_no_such_user(message) and not about_sender:
            return outcome(status, Category.HARD)
    return outcome(status, Category.PERMANENT)
