"""Unit tests of otmetka.site_builder.crypto (envelopes v1 and v2, credentials, tokens)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import re
import zlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from otmetka.site_builder import crypto, shell
from tests.support import paths

VECTORS_PATH = paths.VECTORS / "envelope-v1.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))["vectors"]
FAST_KEY = bytes(range(32))
SALT = bytes(16)
PAGE = "0123456789abcdef0123456789abcdef"


def _by_name(vector: dict[str, Any]) -> str:
    return str(vector["name"])


@pytest.fixture(params=VECTORS, ids=_by_name)
def vector(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(request.param)


def _seal(key: bytes, iv: bytes, data: bytes, aad: bytes) -> str:
    return base64.b64encode(AESGCM(key).encrypt(iv, data, aad)).decode()


# ---- known answers ----------------------------------------------------------------------


def test_vector_normalisation_and_page_id(vector: dict[str, Any]) -> None:
    assert crypto.normalise_password(vector["password"]) == vector["password_normalised"]
    assert crypto.normalise_login(vector["login"]) == vector["login_normalised"]
    assert crypto.page_id_for_login(vector["login"], vector["public_salt"]) == vector["page_id"]


def test_vector_key(vector: dict[str, Any]) -> None:
    salt = bytes.fromhex(vector["salt_hex"])
    key = crypto.derive_key(vector["password"], salt, vector["iterations"])
    assert key.hex() == vector["key_hex"]


def test_vector_decrypts(vector: dict[str, Any]) -> None:
    key = bytes.fromhex(vector["key_hex"])
    plain = crypto.decrypt_page(vector["envelope"], key, vector["page_id"])
    assert plain.decode("utf-8") == vector["plaintext"]


def test_vector_header_and_aad(vector: dict[str, Any]) -> None:
    envelope = vector["envelope"]
    assert crypto.canonical_header(envelope) == vector["header"]
    assert crypto.associated_data(vector["page_id"], envelope).hex() == vector["aad_hex"]
    assert list(envelope) == ["v", "kdf", "iter", "salt", "iv", "ct"]


def test_vector_encrypts_to_same_envelope(vector: dict[str, Any]) -> None:
    key, iv = bytes.fromhex(vector["key_hex"]), bytes.fromhex(vector["iv_hex"])
    salt, page_id = bytes.fromhex(vector["salt_hex"]), vector["page_id"]
    plaintext = vector["plaintext"].encode("utf-8")
    made = crypto.encrypt_page(plaintext, key, salt, page_id, vector["iterations"], iv=iv)
    expected = vector["envelope"]
    header = ("v", "kdf", "iter", "salt", "iv")
    assert [made[k] for k in header] == [expected[k] for k in header]
    # The AES part must match exactly; the deflate part only where zlib builds agree.
    aad = bytes.fromhex(vector["aad_hex"])
    compressed = AESGCM(key).decrypt(iv, base64.b64decode(expected["ct"]), aad)
    assert _seal(key, iv, compressed, aad) == expected["ct"]
    assert zlib.decompress(compressed, -15) == plaintext
    assert crypto.decrypt_page(made, key, page_id) == plaintext
    # Byte for byte where the deflate library gives what it gave when the vectors were made.
    if crypto._deflate(plaintext) == compressed:
        assert made["ct"] == expected["ct"]


def test_vectors_cover_small_and_default_iterations() -> None:
    counts = {v["iterations"] for v in VECTORS}
    assert 1000 in counts and crypto.DEFAULT_ITERATIONS in counts


# ---- round trip and tampering -----------------------------------------------------------


def _envelope(plaintext: bytes = "Оценки: 5".encode()) -> dict[str, Any]:
    return crypto.encrypt_page(plaintext, FAST_KEY, SALT, PAGE, 1000)


def test_round_trip_and_compression() -> None:
    plaintext = ("<tr><td>Математика</td><td>5</td></tr>" * 500).encode()
    envelope = crypto.encrypt_page(plaintext, FAST_KEY, SALT, PAGE, 1000)
    assert crypto.decrypt_page(envelope, FAST_KEY, PAGE) == plaintext
    assert len(base64.b64decode(envelope["ct"])) < len(plaintext) // 10


def test_envelope_shape() -> None:
    envelope = _envelope()
    assert set(envelope) == {"v", "kdf", "iter", "salt", "iv", "ct"}
    assert envelope["v"] == 1 and envelope["kdf"] == "pbkdf2-sha256"
    assert len(base64.b64decode(envelope["iv"])) == 12
    assert base64.b64decode(envelope["salt"]) == SALT


def test_fresh_iv_each_time() -> None:
    assert _envelope()["iv"] != _envelope()["iv"]


def test_wrong_key_fails() -> None:
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_page(_envelope(), bytes(32), PAGE)


def test_other_page_id_fails() -> None:
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_page(_envelope(), FAST_KEY, "f" * 32)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("iter", 999),
        ("salt", base64.b64encode(bytes([1] * 16)).decode()),
        ("iv", base64.b64encode(bytes(12)).decode()),
    ],
)
def test_tampered_header_fails(field: str, value: object) -> None:
    envelope = _envelope()
    envelope[field] = value
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_page(envelope, FAST_KEY, PAGE)


def test_tampered_ciphertext_fails() -> None:
    envelope = _envelope()
    ct = bytearray(base64.b64decode(envelope["ct"]))
    ct[0] ^= 1
    envelope["ct"] = base64.b64encode(bytes(ct)).decode()
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_page(envelope, FAST_KEY, PAGE)


@pytest.mark.parametrize(
    "patch",
    [{"v": 2}, {"kdf": "scrypt"}, {"iter": 0}, {"iter": True}, {"iv": "AAAA"}, {"ct": "!!"}],
)
def test_malformed_envelope_refused(patch: dict[str, Any]) -> None:
    envelope = {**_envelope(), **patch}
    with pytest.raises(crypto.PageCryptoError) as info:
        crypto.decrypt_page(envelope, FAST_KEY, PAGE)
    assert not isinstance(info.value, crypto.DecryptionError)


def test_canonical_header_is_sorted_compact_json() -> None:
    envelope = _envelope()
    header = crypto.canonical_header(envelope)
    assert header.startswith('{"iter":1000,"iv":"') and " " not in header
    assert json.loads(header) == {k: envelope[k] for k in ("v", "kdf", "iter", "salt", "iv")}


def test_bad_arguments() -> None:
    with pytest.raises(crypto.PageCryptoError):
        crypto.encrypt_page(b"x", b"short", SALT, PAGE, 1000)
    with pytest.raises(crypto.PageCryptoError):
        crypto.encrypt_page(b"x", FAST_KEY, SALT, PAGE, 1000, iv=bytes(8))
    with pytest.raises(crypto.PageCryptoError):
        crypto.derive_key("pw", SALT, 0)


# ---- normalisation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "K7MP-2X4Q-ABCD-EF23",
        "k7mp2x4qabcdef23",
        " k7mp 2x4q abcd ef23 ",
        "K7MP–2X4Q—ABCD\u00a0EF23",  # phone keyboards turn "-" into dashes
        "К7МР-2Х4Q-АВСD-ЕF23",  # Cyrillic К М Р Х А В С Е typed on a Russian layout
        "k7mp\t2x4q\nabcd\u200bef23",
    ],
)
def test_password_forgives_case_spaces_dashes(typed: str) -> None:
    assert crypto.normalise_password(typed) == "K7MP2X4QABCDEF23"


def test_same_key_for_forgiving_input() -> None:
    a = crypto.derive_key("K7MP-2X4Q-ABCD-EF23", SALT, 1000)
    assert a == crypto.derive_key(" k7mp 2x4q abcd ef23", SALT, 1000)
    assert a != crypto.derive_key("K7MP-2X4Q-ABCD-EF24", SALT, 1000)


def test_login_normalisation_and_page_id() -> None:
    assert crypto.normalise_login("  AB-CD 23ef ") == "abcd23ef"
    a = crypto.page_id_for_login("AB-CD 23EF", "salt")
    assert a == crypto.page_id_for_login("abcd23ef", "salt")
    assert a != crypto.page_id_for_login("abcd23ef", "other-school")
    assert re.fullmatch(r"[0-9a-f]{32}", a)


# ---- generated credentials and tokens ---------------------------------------------------


def test_alphabet_has_no_look_alikes() -> None:
    assert not set("0O1IL") & set(crypto.ALPHABET)
    assert len(set(crypto.ALPHABET)) == len(crypto.ALPHABET)
    assert crypto.ALPHABET.isupper() and crypto.ALPHABET.isalnum()


@pytest.mark.parametrize("bits", [60, 64, 80])
def test_password_entropy_and_format(bits: int) -> None:
    password = crypto.generate_password(bits)
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4})*", password)
    symbols = crypto.normalise_password(password)
    assert set(symbols) <= set(crypto.ALPHABET)
    assert len(symbols) * math.log2(len(crypto.ALPHABET)) >= bits


def test_default_password_is_at_least_60_bits_and_random() -> None:
    passwords = {crypto.generate_password() for _ in range(50)}
    assert len(passwords) == 50
    symbols = crypto.normalise_password(next(iter(passwords)))
    assert len(symbols) * math.log2(len(crypto.ALPHABET)) >= 60


def test_login_is_short_code_from_alphabet() -> None:
    logins = {crypto.generate_login() for _ in range(50)}
    assert len(logins) == 50
    for login in logins:
        assert len(login) == crypto.LOGIN_LENGTH
        assert set(login) <= set(crypto.ALPHABET.lower())
        assert crypto.normalise_login(login) == login


def test_salt_token_and_hash() -> None:
    assert len(crypto.new_salt()) == 16 and crypto.new_salt() != crypto.new_salt()
    token = crypto.new_token()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    assert crypto.hash_token(token) == crypto.hash_token(token)
    assert re.fullmatch(r"[0-9a-f]{64}", crypto.hash_token(token))
    assert crypto.hash_token("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


# ---- the page shell (otmetka.site_builder.shell) ------------------------------------------------


def _shell(**kwargs: Any) -> str:
    from otmetka.site_builder.shell import render_shell

    return render_shell(_envelope(), PAGE, title="Дневник", remember_days=30, **kwargs).decode()


def test_shell_is_self_contained_with_csp_for_its_scripts() -> None:
    html = _shell(scripts=["window.OtmPage = {};"])
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)
    assert '<meta name="otm-page-id" content="' + PAGE + '">' in html
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp and "default-src &#39;none&#39;" in csp.group(1)
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    assert len(scripts) == 5  # bundle, envelope.js, unlock.js, staff.js, the page's own
    for source in scripts:
        digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
        assert f"sha256-{digest}" in csp.group(1)


def test_shell_envelope_cannot_close_its_script_tag() -> None:
    from otmetka.site_builder.shell import envelope_json, render_shell

    hostile = {**_envelope(), "note": "</script><script>alert(1)</script><!--"}
    text = str(envelope_json(hostile))
    assert "<" not in text and ">" not in text and json.loads(text) == hostile
    html = render_shell(hostile, PAGE, title="x", remember_days=0)
    assert html.count(b"</script>") == 5  # envelope, bundle, envelope.js, unlock.js, staff.js


def test_envelope_json_is_the_compact_sorted_json_of_the_envelope() -> None:
    # The ciphertext, base64 this module wrote, is spliced in unscanned: the text must still
    # be what the JSON encoder writes, for a sealed envelope and for the page's data block.
    sealed = crypto.seal_page("Оценки: 5 < 4 & «ДЗ»".encode(), FAST_KEY, SALT, PAGE, 1000)
    assert isinstance(sealed["ct"], crypto.Base64Text) and len(sealed["ct"]) > 1000
    block = {"v": 1, "z": [1.5, None, True], "a": {"b": "</script>", "a": "ж"}, "ct": "<&>"}
    for value in (sealed, block, {}):
        expected = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=True)
        expected = expected.replace("<", "\\u003c").replace(">", "\\u003e")
        assert str(shell.envelope_json(value)) == expected.replace("&", "\\u0026")
    assert json.loads(str(shell.envelope_json(sealed))) == sealed


def test_pages_of_one_build_differ_only_by_page_id_and_envelope() -> None:
    # The shell is rendered once per look and each page spliced in (shell._shell_parts):
    # another page's document is this one with its id and envelope swapped, nothing else.
    from otmetka.site_builder.shell import envelope_json, render_shell

    look: dict[str, Any] = {"title": "Дневник", "remember_days": 30, "scripts": ["var a;"]}
    one, other = _envelope(), _envelope("Оценки: 4".encode())
    other_id = "fedcba9876543210" * 2
    first = render_shell(one, PAGE, **look).decode()
    second = render_shell(other, other_id, **look).decode()
    assert first.count(PAGE) == 2 and "\x00" not in first
    swapped = first.replace(str(envelope_json(one)), str(envelope_json(other)))
    assert swapped.replace(PAGE, other_id) == second
    element = f'<script type="application/json" id="otm-envelope">{envelope_json(other)}</script>'
    assert element in second


def test_shell_refuses_unsafe_input() -> None:
    with pytest.raises(ValueError):
        _shell(scripts=["var a = '</script>';"])
    with pytest.raises(ValueError):
        _shell(css="</style><script>")
    from otmetka.site_builder.shell import render_shell

    with pytest.raises(ValueError):
        render_shell(_envelope(), "../etc", title="x", remember_days=1)
    with pytest.raises(crypto.PageCryptoError):
        render_shell({"v": 2}, PAGE, title="x", remember_days=1)


def test_login_page_carries_public_salt_escaped() -> None:
    from otmetka.site_builder.shell import render_login_page

    html = render_login_page('salt"<x>', title="Школа №1")
    assert '<meta name="otm-public-salt" content="salt&#34;&lt;x&gt;">' in html
    assert '<html lang="ru">' in html and 'id="otm-login-form"' in html


def test_shipped_scripts_avoid_syntax_newer_than_es2017() -> None:
    """A cheap guard for old Android browsers: the usual post-ES2017 slips in our page
    scripts (the vendored bundle is lowered to ES2017 by esbuild)."""
    static = paths.ROOT / "site_builder" / "static"
    # ?. ?? (ES2020), catch without binding (ES2019), async generators (ES2018),
    # private class members (ES2022).
    newer = re.compile(r"\?\.(?!\d)|\?\?|\bcatch\s*\{|\basync\s+function\s*\*|#\w+\s*[=(;]")
    for name in sorted(p.name for p in static.glob("*.js")):
        source = (static / name).read_text(encoding="utf-8")
        code = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)
        assert not newer.findall(code), name


def test_js_normalisation_tables_match_python() -> None:
    """The one JS copy of the normalisation (vendor_src/normalise.js) and the shipped bundle
    built from it spell out the same separator class and look-alike letters (the browser
    tests then check unlock.js and login.js against the vectors through the bundle)."""
    folder = paths.ROOT / "site_builder"
    copies = {
        "normalise.js": (folder / "vendor_src" / "normalise.js", r"'([А-Я])': '([A-Z])'"),
        "bundle": (folder / "static" / "vendor" / "otmetka-crypto.min.js", r'([А-Я]):"([A-Z])"'),
    }
    for name, (path, pair) in copies.items():
        source = path.read_text(encoding="utf-8")
        assert f"/{crypto.SEPARATOR_CLASS}+/g" in source, name
        assert "/[АВЕКМНОРСТХУ]/g" in source, name
        pairs = re.findall(pair, source)
        assert "".join(a for a, _ in pairs) == "АВЕКМНОРСТХУ", name
        assert crypto.normalise_password("".join(a for a, _ in pairs)) == "".join(
            b for _, b in pairs
        ), name


def test_page_scripts_carry_no_copy_of_the_normalisation() -> None:
    """envelope.js (for unlock.js) and login.js take it from the bundle, so they cannot
    drift apart."""
    static = paths.ROOT / "site_builder" / "static"
    for name in ("envelope.js", "login.js"):
        source = (static / name).read_text(encoding="utf-8")
        assert "АВЕКМНОРСТХУ" not in source, name
        assert "bundle().normalisePassword(" in source, name


# ---- envelope v2: a key per file, padded to a size bucket --------------------------------


def _hkdf_reference(key: bytes, salt: bytes) -> bytes:
    """RFC 5869 written out: extract, then one block of expand (what unlock.js computes)."""
    prk = hmac.new(salt, key, hashlib.sha256).digest()
    return hmac.new(prk, crypto.HKDF_INFO + b"\x01", hashlib.sha256).digest()


def test_v2_page_round_trip_and_shape() -> None:
    plaintext = "<p>Оценки: 5, 4</p>".encode()
    envelope = crypto.seal_page(plaintext, FAST_KEY, SALT, PAGE, 1000)
    assert set(envelope) == {"v", "kdf", "iter", "salt", "hs", "iv", "ct"}
    assert envelope["v"] == 2 and envelope["kdf"] == "pbkdf2-sha256"
    assert base64.b64decode(envelope["salt"]) == SALT  # the PBKDF2 salt, for the browser
    assert crypto.decrypt_page(envelope, FAST_KEY, PAGE) == plaintext
    header = crypto.canonical_header(envelope)
    assert header.startswith('{"hs":"') and json.loads(header) == {
        k: envelope[k] for k in ("v", "kdf", "iter", "salt", "hs", "iv")
    }


def test_v2_file_key_is_hkdf_of_the_credential_key() -> None:
    hs, iv = bytes(range(16)), bytes(12)
    envelope = crypto.seal_page(b"page", FAST_KEY, SALT, PAGE, 1000, hs=hs, iv=iv)
    assert crypto.file_key(FAST_KEY, hs) == _hkdf_reference(FAST_KEY, hs)
    aad = crypto.associated_data(PAGE, envelope)
    framed = AESGCM(_hkdf_reference(FAST_KEY, hs)).decrypt(
        iv, base64.b64decode(envelope["ct"]), aad
    )
    length = int.from_bytes(framed[:4], "big")
    assert zlib.decompress(framed[4 : 4 + length], -15) == b"page"
    assert framed[4 + length :] == bytes(len(framed) - 4 - length)  # zeros up to the bucket


def test_v2_every_file_has_its_own_salt_and_iv() -> None:
    first = crypto.seal_page(b"x", FAST_KEY, SALT, PAGE, 1000)
    second = crypto.seal_page(b"x", FAST_KEY, SALT, PAGE, 1000)
    assert first["hs"] != second["hs"] and first["iv"] != second["iv"]


def test_v2_sizes_tell_only_the_bucket() -> None:
    small = crypto.seal_page(b"", FAST_KEY, SALT, PAGE, 1000)
    larger = crypto.seal_page(secrets_text(8_000), FAST_KEY, SALT, PAGE, 1000)
    assert len(small["ct"]) == len(larger["ct"])  # both in the floor bucket
    big = crypto.seal_page(secrets_text(40_000), FAST_KEY, SALT, PAGE, 1000)
    padded = len(base64.b64decode(big["ct"])) - 16
    assert padded > crypto.PAD_FLOOR and crypto.padded_size(padded) == padded


def secrets_text(size: int) -> bytes:
    """Bytes that do not compress, so the deflated length is about `size`."""
    return hashlib.shake_256(b"incompressible").digest(size)


def test_padded_size_buckets() -> None:
    assert crypto.padded_size(0) == crypto.padded_size(crypto.PAD_FLOOR) == crypto.PAD_FLOOR
    buckets = sorted({crypto.padded_size(n) for n in range(0, 4_000_000, 997)})
    assert buckets[:4] == [24 * 1024, 30 * 1024, 38 * 1024, 48 * 1024]
    for low, high in itertools.pairwise(buckets):
        assert high % crypto.PAD_ROUND == 0 and low < high <= low * 1.25 + crypto.PAD_ROUND
    assert all(crypto.padded_size(b) == b and crypto.padded_size(b + 1) > b for b in buckets)


def test_v2_file_envelope_has_no_kdf_salt_and_binds_its_id() -> None:
    fid = "f" * 32
    envelope = crypto.seal_file(b"%PDF-1.7", FAST_KEY, fid)
    assert set(envelope) == {"v", "kdf", "hs", "iv", "ct"} and envelope["kdf"] == "page-key"
    assert crypto.decrypt_page(envelope, FAST_KEY, fid) == b"%PDF-1.7"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_page(envelope, FAST_KEY, PAGE)
    with pytest.raises(ValueError, match="KDF salt"):
        shell.render_shell(envelope, fid, title="Школа", remember_days=0)


@pytest.mark.parametrize("field", ["hs", "iv", "salt", "iter"])
def test_v2_tampered_header_fails(field: str) -> None:
    envelope = crypto.seal_page(b"x", FAST_KEY, SALT, PAGE, 1000)
    other = crypto.seal_page(b"x", FAST_KEY, bytes([7] * 16), PAGE, 2000)
    envelope[field] = other[field]
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_page(envelope, FAST_KEY, PAGE)


def test_v2_length_field_past_the_end_is_refused() -> None:
    hs, iv = bytes(16), bytes(12)
    envelope = crypto.seal_page(b"x", FAST_KEY, SALT, PAGE, 1000, hs=hs, iv=iv)
    framed = (10**6).to_bytes(4, "big") + bytes(60)
    aad = crypto.associated_data(PAGE, envelope)
    envelope["ct"] = _seal(crypto.file_key(FAST_KEY, hs), iv, framed, aad)
    with pytest.raises(crypto.PageCryptoError, match="length field") as info:
        crypto.decrypt_page(envelope, FAST_KEY, PAGE)
    assert not isinstance(info.value, crypto.DecryptionError)


@pytest.mark.parametrize(
    "patch", [{"hs": "AAAA"}, {"hs": None}, {"kdf": "page-key", "v": 3}, {"v": "2"}]
)
def test_v2_malformed_envelope_refused(patch: dict[str, Any]) -> None:
    envelope = {**crypto.seal_page(b"x", FAST_KEY, SALT, PAGE, 1000), **patch}
    with pytest.raises(crypto.PageCryptoError) as info:
        crypto.decrypt_page(envelope, FAST_KEY, PAGE)
    assert not isinstance(info.value, crypto.DecryptionError)
