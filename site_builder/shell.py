"""The HTML shell of an encrypted page, and the login page (``output/index.html``).

Both are single self-contained documents: CSS, the vendored crypto bundle and the unlock
or login script are inlined, so a page works from file://, from any mirror and offline,
and asks no other host for anything. A Content-Security-Policy with the hashes of exactly
these inline scripts backs that up: decrypted content cannot run scripts or load remote
images, whatever it contains.

DOM contract used by ``static/unlock.js`` (see its header for the full list):
``<meta name="otm-page-id">``, ``<meta name="otm-remember-days">``,
``<script type="application/json" id="otm-envelope">`` and ``<main id="otm-app">``,
whose content the decrypted fragment replaces.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from markupsafe import Markup

from otmetka.site_builder import static_files, templating
from otmetka.site_builder.crypto import ENVELOPE_VERSION, KDF_NAME, Base64Text, page_salt

# Inlined first in every document: envelope.js and login.js take the password and login
# normalisation from it (its one JS copy, as crypto.py), with or without WebCrypto.
VENDOR_BUNDLE = "vendor/otmetka-crypto.min.js"
# A page's shell then inlines the envelope's crypto steps and the unlocking that uses them.
ENVELOPE_SCRIPT = "envelope.js"
UNLOCK_SCRIPT = "unlock.js"
LOGIN_SCRIPT = "login.js"
# The staff pages' script and styles ride in every page's shell: a page that carried them
# only for teachers would be told apart from outside.
STAFF_SCRIPT = "staff.js"
STAFF_CSS = "staff.css"
_SCRIPTS = (ENVELOPE_SCRIPT, UNLOCK_SCRIPT, LOGIN_SCRIPT, STAFF_SCRIPT)

# Mobile first (usable at 360 px), large tap targets, 16 px inputs so iOS does not zoom.
BASE_CSS = """
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#fff;--muted:#5a6270;--accent:#1f5fbf;
--err:#b3261e;--line:#c9ced6}
@media (prefers-color-scheme:dark){:root{--fg:#e8eaed;--bg:#16181c;--muted:#a5acb8;
--accent:#8ab4f8;--err:#f28b82;--line:#3c4048}}
*{box-sizing:border-box}
[hidden]{display:none!important}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;
color:var(--fg);background:var(--bg)}
main{display:block;max-width:48rem;margin:0 auto;padding:1rem}
main:focus{outline:none}
h1{font-size:1.4rem;line-height:1.25;margin:.5rem 0 1rem}
a{color:var(--accent)}
.otm-lock{max-width:26rem;margin:0 auto}
.otm-lead,.otm-hint,.otm-alt{color:var(--muted)}
.otm-hint{font-size:.9rem;margin:.25rem 0 1rem}
.otm-form label{display:block;font-weight:600;margin:.75rem 0 .25rem}
.otm-form input[type=text],.otm-form input[type=password]{display:block;width:100%;
font-size:1.125rem;padding:.6rem .75rem;min-height:2.75rem;border:1px solid var(--line);
border-radius:.4rem;color:inherit;background:transparent;letter-spacing:.04em}
.otm-form .otm-check{display:flex;align-items:center;gap:.5rem;font-weight:400;
min-height:2.75rem;margin:.25rem 0}
.otm-check input{width:1.25rem;height:1.25rem;margin:0}
.otm-form button,.otm-bar button{font:inherit;font-weight:600;min-height:2.75rem;
padding:.5rem 1.25rem;border:0;border-radius:.4rem;background:var(--accent);color:var(--bg);
cursor:pointer}
.otm-form button{width:100%;margin-top:.5rem}
.otm-form button[disabled]{opacity:.6;cursor:progress}
.otm-progress{display:flex;flex-direction:column;gap:.25rem;margin-top:.75rem}
.otm-progress progress{width:100%;height:.75rem}
.otm-error{color:var(--err);font-weight:600;min-height:1.5em;margin:.75rem 0 0}
.otm-bar{display:flex;align-items:center;justify-content:space-between;gap:.75rem;
max-width:48rem;margin:0 auto;padding:.5rem 1rem;border-bottom:1px solid var(--line);
font-size:.9rem;color:var(--muted)}
.otm-bar button{min-height:2.5rem;padding:.25rem 1rem;background:transparent;
color:var(--accent);border:1px solid var(--line)}
@media print{.otm-bar,.otm-lock,.otm-form{display:none!important}
body{font-size:11pt;color:#000;background:#fff}main{max-width:none;padding:0}}
"""

# Inline scripts are matched by hash; styles stay inline-only. No default source at all, so
# nothing (images, fonts, frames) is fetched from any host. connect-src is the caller's:
# the page posts acknowledgements to the school's endpoint, possibly another origin.
# 'wasm-unsafe-eval' lets the hashed scripts compile the vendored WebAssembly SHA-256 (the key
# derivation on plain http, where WebCrypto is missing); it allows no eval of JavaScript.
_CSP = (
    "default-src 'none'; script-src 'wasm-unsafe-eval' {scripts}; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src {connect}; "
    "base-uri 'none'; form-action 'none'"
)
_SCRIPT_END = re.compile(r"</script|<!--", re.IGNORECASE)
_STYLE_END = re.compile(r"</style", re.IGNORECASE)


@functools.cache
def shell_version() -> str:
    """A short hash of everything the shell inlines (templates, scripts, CSS, the envelope).

    The builder mixes it into each page's content hash, so changing unlock.js, the bundle
    or the templates re-renders every page.
    """
    digest = hashlib.sha256(BASE_CSS.encode())
    digest.update(static_files.text(STAFF_CSS).encode())
    for script in (static_files.text(VENDOR_BUNDLE), *map(static_files.script, _SCRIPTS)):
        digest.update(script.encode())
    for template in ("shell.html.j2", "login.html.j2"):
        path = resources.files("otmetka.site_builder") / "templates" / template
        digest.update(path.read_bytes())
    digest.update(f"{ENVELOPE_VERSION}:{KDF_NAME}".encode())
    return digest.hexdigest()[:12]


def _inline_script(source: str) -> Markup:
    """Mark JS safe to inline after checking it cannot close or confuse its <script> tag."""
    if _SCRIPT_END.search(source):
        raise ValueError("inline script must not contain '</script' or '<!--'")
    return Markup(source)


def _inline_css(source: str) -> Markup:
    if _STYLE_END.search(source):
        raise ValueError("inline CSS must not contain '</style'")
    return Markup(source)


def _script_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _csp(scripts: Sequence[str], connect_src: str) -> str:
    hashes = " ".join(_script_hash(s) for s in scripts) or "'none'"
    return _CSP.format(scripts=hashes, connect=connect_src)


_json = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode


_JSON_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"))


def _json_value(value: Any) -> str:
    # A page's ciphertext is a third of its file: the encoder's scan of it for characters to
    # escape took longer than the encryption, and base64 has none.
    return f'"{value}"' if value.__class__ is Base64Text else _json(value)


def envelope_json(envelope: Mapping[str, Any]) -> Markup:
    """The envelope as JSON safe inside <script type="application/json">.

    ``<``, ``>`` and ``&`` are written as JSON escapes, so no ``</script>`` (or comment
    opener) can appear whatever the values; JSON.parse reads the escapes back.
    """
    members = (f"{_json(key)}:{_json_value(value)}" for key, value in sorted(envelope.items()))
    text = "{" + ",".join(members) + "}"
    for char, escape in _JSON_ESCAPES:
        if char in text:  # a cheap search: replace() counts first, slowly, even when absent
            text = text.replace(char, escape)
    return Markup(text)


_PAGE_ID = re.compile(r"[0-9a-f]{16,64}")


def render_shell(
    envelope: dict[str, Any],
    page_id: str,
    *,
    title: str,
    remember_days: int,
    scripts: Sequence[str] = (),
    css: str = "",
    connect_src: str = "*",
) -> bytes:
    """A complete HTML document, as the UTF-8 of its file, that asks for the password and
    shows the decrypted page; spliced from the shell's parts encoded once per look.

    ``title`` is public (shown before unlocking): never put a person's name in it.
    ``remember_days`` is how long «Запомнить на этом устройстве» keeps the derived key;
    0 hides that option. ``scripts`` are extra trusted inline scripts run after unlock.js,
    e.g. one that defines ``window.OtmPage = {init(root, info), destroy(root)}``: unlock.js
    calls ``OtmPage.init`` after inserting the decrypted fragment, whose own scripts never
    run. ``css`` is appended to the base styles; staff.js and staff.css come with every
    page. ``connect_src`` is the CSP source list for fetch/XHR (the endpoint the page
    posts to).
    """
    if not page_salt(envelope):  # refuse to publish a page that could never open
        raise ValueError("a page's envelope must carry its KDF salt (a file's cannot open alone)")
    if not _PAGE_ID.fullmatch(page_id):
        raise ValueError("page_id must be lower-case hex")
    if remember_days < 0:
        raise ValueError("remember_days must be >= 0")
    parts = _shell_bytes(title, remember_days, tuple(scripts), css, connect_src)
    body = envelope_json(envelope).encode("ascii")  # ensure_ascii: nothing else to encode
    return page_id.encode("ascii").join(parts[:-1]) + body + parts[-1]


@functools.lru_cache(maxsize=8)
def _shell_bytes(
    title: str, remember_days: int, scripts: tuple[str, ...], css: str, connect_src: str
) -> tuple[bytes, ...]:
    parts = _shell_parts(title, remember_days, scripts, css, connect_src)
    return tuple(part.encode("utf-8") for part in parts)


# Every page of a build shares one shell but for its page id and envelope: the template is
# rendered once per look with stand-ins (neither can occur in the shell's own text), then
# each page is spliced in. The result is what rendering the template per page gives.
_PAGE_ID_MARK = "\x00page-id\x00"
_ENVELOPE_MARK = "\x00envelope\x00"


@functools.lru_cache(maxsize=8)
def _shell_parts(
    title: str, remember_days: int, scripts: tuple[str, ...], css: str, connect_src: str
) -> tuple[str, ...]:
    """The shell cut at its page ids, the last piece cut again at the envelope."""
    inline = [
        static_files.text(VENDOR_BUNDLE),
        static_files.script(ENVELOPE_SCRIPT),
        static_files.script(UNLOCK_SCRIPT),
        *scripts,
        static_files.script(STAFF_SCRIPT),
    ]
    html = (
        templating.environment(trim=False, keep_trailing_newline=True)
        .get_template("shell.html.j2")
        .render(
            csp=_csp(inline, connect_src),
            page_id=Markup(_PAGE_ID_MARK),
            remember_days=remember_days,
            title=title,
            css=_inline_css(BASE_CSS + css + static_files.text(STAFF_CSS)),
            envelope_json=Markup(_ENVELOPE_MARK),
            scripts=[_inline_script(s) for s in inline],
        )
    )
    *head, tail = html.split(_PAGE_ID_MARK)
    before, after = tail.split(_ENVELOPE_MARK)
    return (*head, before, after)


def render_login_page(public_salt: str, *, title: str) -> str:
    """``output/index.html``: login + password -> opens ``p/<page_id>.html`` unlocked."""
    inline = [static_files.text(VENDOR_BUNDLE), static_files.script(LOGIN_SCRIPT)]
    return (
        templating.environment(trim=False, keep_trailing_newline=True)
        .get_template("login.html.j2")
        .render(
            csp=_csp(inline, "'self'"),
            public_salt=public_salt,
            title=title,
            css=_inline_css(BASE_CSS),
            scripts=[_inline_script(s) for s in inline],
        )
    )
