"""Page encryption (envelopes v1 and v2), credentials and tokens.

Python encrypts; the browser (``static/unlock.js``) decrypts with WebCrypto or, outside a
secure context, with the vendored pure-JS bundle. Both sides must agree byte for byte on:

* password normalisation (:func:`normalise_password`) and login normalisation
  (:func:`normalise_login`), mirrored once in ``vendor_src/normalise.js``, which the
  vendored bundle exposes to ``unlock.js`` and ``login.js``;
* the page id (:func:`page_id_for_login`), mirrored in ``login.js``;
* the credential's key: PBKDF2-HMAC-SHA256 of the UTF-8 normalised password, 32 bytes;
* the associated data (:func:`associated_data`), mirrored in ``unlock.js``;
* the plaintext transform: raw deflate (no zlib header) before AES-256-GCM.

Envelope v1 (``tests/vectors/envelope-v1.json`` pins it for both sides) seals with the
credential's key itself. Envelope v2, which the builder writes, seals every file with its own
key: HKDF-SHA256 of the credential's key with a random per-file salt ``hs``, so no two files
share a salt while a reader still runs PBKDF2 once per unlock. Its plaintext is framed and
padded (:func:`padded_size`), so a file's length tells only its size bucket. A page's v2
envelope carries the PBKDF2 salt and count; a file's (a PDF linked from a page, ``kdf``
``"page-key"``) carries neither: it opens with the key of the page that links it.
See docs/encryption.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import secrets
import zlib
from collections.abc import Mapping
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from isal import isal_zlib

ENVELOPE_VERSION = 2  # what the builder writes; v1 is still read here and by unlock.js
KDF_NAME = "pbkdf2-sha256"
FILE_KDF = "page-key"  # a v2 file: its key comes from the page that links it
HKDF_INFO = b"otmetka envelope v2"
HS_BYTES = 16
LENGTH_BYTES = 4
# Size buckets of the padded plaintext (see padded_size). The floor holds every family
# and consent page and the «доступ заблокирован» notice, so those cannot be told apart:
# the bench school's largest guardian page deflates to about 15 KiB.
PAD_FLOOR = 24 * 1024
PAD_ROUND = 1024
# Header fields of each layout, in canonical (sorted) order; "ct" follows them.
_LAYOUTS: dict[tuple[object, object], tuple[str, ...]] = {
    (1, KDF_NAME): ("iter", "iv", "kdf", "salt", "v"),
    (2, KDF_NAME): ("hs", "iter", "iv", "kdf", "salt", "v"),
    (2, FILE_KDF): ("hs", "iv", "kdf", "v"),
}
DEFAULT_ITERATIONS = 600_000
MAX_ITERATIONS = 2**31 - 1  # WebCrypto's PBKDF2 count is an unsigned long; unlock.js agrees
KEY_BYTES = 32
IV_BYTES = 12
SALT_BYTES = 16
PAGE_ID_HEX_CHARS = 32

# Digits and capitals without the look-alikes 0/O, 1/I/L, and U (blurs with V when written
# by hand or printed small): 30 symbols, log2(30) ~ 4.907 bits each.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
ALPHABET_BITS_PER_CHAR = math.log2(len(ALPHABET))
PASSWORD_GROUP = 4
LOGIN_LENGTH = 8

# Cyrillic capitals that look like Latin ones. A parent on a Russian keyboard layout who
# types «К7МР» from a printed slip gets the Latin password; generated credentials never
# contain Cyrillic, so the mapping can only help. vendor_src/normalise.js (in the vendored
# bundle, used by unlock.js and login.js) holds the same table.
_CYRILLIC_LOOKALIKES = str.maketrans("АВЕКМНОРСТХУ", "ABEKMHOPCTXY")
# Spaces of every kind (listed, since Python's and JS's \\s differ), zero-width and soft
# hyphen characters, and the hyphen, minus and dashes that phones substitute for "-".
# vendor_src/normalise.js carries the same class, character for character.
SEPARATOR_CLASS = (
    "[\\t\\n\\v\\f\\r \\u00a0\\u00ad\\u1680\\u2000-\\u200b\\u2028\\u2029\\u202f"
    "\\u205f\\u3000\\ufeff\\-\\u2010-\\u2015\\u2212]"
)
_SEPARATORS = re.compile(SEPARATOR_CLASS + "+")

_B64 = re.compile(r"\A[A-Za-z0-9+/]*={0,2}\Z")
_MAX_PLAINTEXT = 64 * 1024 * 1024  # inflate limit for decrypt_page: a page, not a bomb


class PageCryptoError(ValueError):
    """A malformed envelope or argument, or a page that does not decrypt."""


class DecryptionError(PageCryptoError):
    """The GCM tag did not verify: wrong key/password, another page's id, or tampering."""


def normalise_password(password: str) -> str:
    """Upper-case, map Cyrillic look-alikes to Latin, drop whitespace and dashes.

    Passwords are accepted regardless of case, spaces and dashes, so «k7mp 2x4q-…» and
    «K7MP-2X4Q-…» derive the same key.
    """
    return _SEPARATORS.sub("", password.upper().translate(_CYRILLIC_LOOKALIKES))


def normalise_login(login: str) -> str:
    """Same folding as the password, then lower-case (logins are shown in lower case)."""
    return normalise_password(login).lower()


def page_id_for_login(login: str, public_salt: str) -> str:
    """First 32 hex chars of SHA-256(public_salt + ":" + normalised login).

    The public salt is published in index.html; it only keeps ids of different schools
    apart. The id carries no name, and the page is useless without the password.
    """
    data = f"{public_salt}:{normalise_login(login)}".encode()
    return hashlib.sha256(data).hexdigest()[:PAGE_ID_HEX_CHARS]


def _check_iterations(iterations: object) -> None:
    # type() and not isinstance(): a bool is an int, and True iterations is a bug.
    if type(iterations) is not int or not 1 <= iterations <= MAX_ITERATIONS:
        raise PageCryptoError(f"iterations must be an integer in 1..{MAX_ITERATIONS}")


def derive_key(password: str, salt: bytes, iterations: int) -> bytes:
    """PBKDF2-HMAC-SHA256 over the UTF-8 of the normalised password, 32 bytes."""
    _check_iterations(iterations)
    if len(salt) < 8:
        raise PageCryptoError("salt must be at least 8 bytes")
    secret = normalise_password(password).encode("utf-8")
    # cryptography's OpenSSL PBKDF2 is ~2x faster than hashlib's, which matters when a
    # whole school's credentials are derived at once.
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, iterations=iterations)
    return kdf.derive(secret)


class Base64Text(str):
    """Text this module wrote as base64: only A-Z a-z 0-9 + / =, so JSON and HTML need not
    escape it, and a page's envelope is written without a scan of its ciphertext (see
    shell.envelope_json). Made only by `of`; text read back is a plain str."""

    __slots__ = ()

    @classmethod
    def of(cls, data: bytes) -> Base64Text:
        return cls(base64.b64encode(data).decode("ascii"))


def _b64(data: bytes) -> str:
    return Base64Text.of(data)


def _unb64(value: object, field: str) -> bytes:
    if not isinstance(value, str) or not _B64.match(value):
        raise PageCryptoError(f"envelope field {field!r} is not base64")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise PageCryptoError(f"envelope field {field!r} is not base64") from exc


def _layout(envelope: Mapping[str, Any]) -> tuple[str, ...]:
    layout = _LAYOUTS.get((envelope.get("v"), envelope.get("kdf")))
    if layout is None:
        raise PageCryptoError("unsupported envelope version or kdf")
    return layout


def canonical_header(envelope: Mapping[str, Any]) -> str:
    """The envelope header as it is authenticated: canonical JSON of every field but ``ct``.

    Canonical means: exactly the header keys of the envelope's layout (v1: ``iter, iv, kdf,
    salt, v``; a v2 page adds ``hs``; a v2 file has ``hs, iv, kdf, v``) in sorted order,
    separators ``,`` and ``:`` with no whitespace, integers in decimal, strings as JSON
    strings. The values are ASCII (base64 and a fixed name), so the JS side writes the same
    string by concatenation: ``{"iter":600000,"iv":"…","kdf":"pbkdf2-sha256","salt":"…","v":1}``.
    """
    header = {k: envelope[k] for k in _layout(envelope)}
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def associated_data(page_id: str, envelope: Mapping[str, Any]) -> bytes:
    """GCM associated data: UTF-8 of ``page_id + "|" + canonical_header(envelope)``.

    Binding the page id (a file's id for a file) stops a ciphertext being moved to another
    person's page; binding the header stops a downgrade of the iteration count or a swap of
    salt or iv.
    """
    return f"{page_id}|{canonical_header(envelope)}".encode()


# ISA-L's deflate at its level 2, not zlib's: the same raw deflate stream format, made four
# times as fast as zlib at level 3 (six times as fast as level 6). A family page's deflated
# fragment stays well under the smallest size bucket (24 KiB) either way, so its file comes
# out the same size; a class teacher's page is a few percent bigger (bench/build.py).
DEFLATE_LEVEL = 2


def _deflate(data: bytes) -> bytes:
    # Raw deflate (wbits -15): what inflate-raw reads.
    return isal_zlib.compress(data, DEFLATE_LEVEL, wbits=-15)


def _inflate(data: bytes) -> bytes:
    decompressor = zlib.decompressobj(wbits=-15)
    out = decompressor.decompress(data, _MAX_PLAINTEXT)
    if not decompressor.eof or decompressor.unconsumed_tail:
        raise PageCryptoError("compressed page is truncated or too large")
    return out


def padded_size(length: int) -> int:
    """The smallest size bucket that holds `length` bytes of framed plaintext.

    Buckets start at PAD_FLOOR and grow by a factor of 1.25, rounded up to whole KiB
    (24, 30, 38, 48, 60, 75, 94, ... KiB): a file's length tells its bucket, nothing finer,
    and no file is padded by more than a quarter of its size above the floor.
    """
    size = PAD_FLOOR
    while size < length:
        size = -(-size * 5 // (4 * PAD_ROUND)) * PAD_ROUND
    return size


def _frame(compressed: bytes) -> bytes:
    """Length (4 bytes, big-endian), the deflated plaintext, zeros up to the bucket."""
    body = len(compressed).to_bytes(LENGTH_BYTES, "big") + compressed
    return body + bytes(padded_size(len(body)) - len(body))


def _unframe(framed: bytes) -> bytes:
    length = int.from_bytes(framed[:LENGTH_BYTES], "big")
    if len(framed) < LENGTH_BYTES or LENGTH_BYTES + length > len(framed):
        raise PageCryptoError("padded plaintext is shorter than its length field")
    return framed[LENGTH_BYTES : LENGTH_BYTES + length]


def file_key(key: bytes, hs: bytes) -> bytes:
    """One file's AES key (v2): HKDF-SHA256 of the credential's key with the file's salt."""
    if len(key) != KEY_BYTES:
        raise PageCryptoError("key must be 32 bytes")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=hs, info=HKDF_INFO)
    return hkdf.derive(key)


def _nonce(given: bytes | None, size: int, name: str) -> bytes:
    value = secrets.token_bytes(size) if given is None else given
    if len(value) != size:
        raise PageCryptoError(f"{name} must be {size} bytes")
    return value


def encrypt_page(
    plaintext: bytes,
    key: bytes,
    salt: bytes,
    page_id: str,
    iterations: int,
    iv: bytes | None = None,
) -> dict[str, Any]:
    """Encrypt one page into envelope v1 (the known-answer vectors; the builder uses
    :func:`seal_page`).

    ``key`` must be ``derive_key(password, salt, iterations)``. ``iv`` is random unless
    given (tests only): never reuse an iv with the same key.
    """
    if len(key) != KEY_BYTES:
        raise PageCryptoError("key must be 32 bytes")
    _check_iterations(iterations)
    nonce = _nonce(iv, IV_BYTES, "iv")
    envelope: dict[str, Any] = {
        "v": 1,
        "kdf": KDF_NAME,
        "iter": iterations,
        "salt": _b64(salt),
        "iv": _b64(nonce),
    }
    aad = associated_data(page_id, envelope)
    envelope["ct"] = _b64(AESGCM(key).encrypt(nonce, _deflate(plaintext), aad))
    return envelope


def seal_page(
    plaintext: bytes,
    key: bytes,
    salt: bytes,
    page_id: str,
    iterations: int,
    *,
    hs: bytes | None = None,
    iv: bytes | None = None,
) -> dict[str, Any]:
    """Encrypt one page into envelope v2, padded to its size bucket.

    ``key`` is the credential's cached ``derive_key(password, salt, iterations)``: a rebuild
    costs one HKDF and one AES pass. ``hs`` and ``iv`` are random unless given (tests only).
    """
    _check_iterations(iterations)
    envelope: dict[str, Any] = {"v": 2, "kdf": KDF_NAME, "iter": iterations, "salt": _b64(salt)}
    return _seal_v2(envelope, plaintext, key, page_id, hs, iv)


def seal_file(
    data: bytes, key: bytes, file_id: str, *, hs: bytes | None = None, iv: bytes | None = None
) -> dict[str, Any]:
    """Encrypt a file a page links (a PDF) into a v2 file envelope under the page's
    credential key: no PBKDF2 salt in it, its own HKDF salt and iv, padded like a page."""
    return _seal_v2({"v": 2, "kdf": FILE_KDF}, data, key, file_id, hs, iv)


def _seal_v2(
    envelope: dict[str, Any],
    plaintext: bytes,
    key: bytes,
    object_id: str,
    hs: bytes | None,
    iv: bytes | None,
) -> dict[str, Any]:
    file_salt, nonce = _nonce(hs, HS_BYTES, "hs"), _nonce(iv, IV_BYTES, "iv")
    aead = AESGCM(file_key(key, file_salt))
    envelope.update(hs=_b64(file_salt), iv=_b64(nonce))
    framed = _frame(_deflate(plaintext))
    envelope["ct"] = _b64(aead.encrypt(nonce, framed, associated_data(object_id, envelope)))
    return envelope


class Sealed(NamedTuple):
    """The binary parts of a checked envelope; ``salt`` and ``hs`` are empty where the
    layout has none."""

    version: int
    salt: bytes
    hs: bytes
    iv: bytes
    ct: bytes


def page_salt(envelope: Mapping[str, Any]) -> bytes:
    """The PBKDF2 salt of an envelope (empty for a file's, which has none), its layout
    checked; cheaper than :func:`parse_envelope`, which decodes the ciphertext too."""
    layout = _layout(envelope)
    return _unb64(envelope.get("salt"), "salt") if "salt" in layout else b""


def parse_envelope(envelope: Mapping[str, Any]) -> Sealed:
    """Check an envelope's shape and return its parts; raise PageCryptoError if bad."""
    layout = _layout(envelope)
    if "iter" in layout:
        _check_iterations(envelope.get("iter"))
    iv = _unb64(envelope.get("iv"), "iv")
    if len(iv) != IV_BYTES:
        raise PageCryptoError("envelope 'iv' must be 12 bytes")
    hs = _unb64(envelope.get("hs"), "hs") if "hs" in layout else b""
    if "hs" in layout and len(hs) != HS_BYTES:
        raise PageCryptoError("envelope 'hs' must be 16 bytes")
    ct = _unb64(envelope.get("ct"), "ct")
    if len(ct) < 16:  # not even a GCM tag
        raise PageCryptoError("envelope 'ct' is too short")
    salt = _unb64(envelope.get("salt"), "salt") if "salt" in layout else b""
    return Sealed(int(envelope["v"]), salt, hs, iv, ct)


def decrypt_page(envelope: Mapping[str, Any], key: bytes, page_id: str) -> bytes:
    """Inverse of :func:`encrypt_page`, :func:`seal_page` and :func:`seal_file` (for tests
    and tools; browsers use unlock.js). ``key`` is the credential's key; ``page_id`` is the
    file's id for a file."""
    sealed = parse_envelope(envelope)
    if len(key) != KEY_BYTES:
        raise PageCryptoError("key must be 32 bytes")
    aead = AESGCM(key if sealed.version == 1 else file_key(key, sealed.hs))
    try:
        opened = aead.decrypt(sealed.iv, sealed.ct, associated_data(page_id, envelope))
    except InvalidTag as exc:
        raise DecryptionError("wrong key or tampered page") from exc
    return _inflate(opened if sealed.version == 1 else _unframe(opened))


def _random_symbols(count: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(count))


def password_length(bits: int) -> int:
    """Symbols needed for at least ``bits`` of entropy, rounded up to whole groups of 4."""
    symbols = math.ceil(bits / ALPHABET_BITS_PER_CHAR)
    return math.ceil(symbols / PASSWORD_GROUP) * PASSWORD_GROUP


def generate_password(bits: int = 60) -> str:
    """A random password of at least ``bits`` bits, in groups of 4: «K7MP-2X4Q-…».

    With the 30-symbol alphabet, 60 bits needs 13 symbols, rounded up to 16 (4 groups):
    16 x log2(30) ~ 78.5 bits. Entropy is counted on the normalised form (what the KDF
    sees); the dashes are only for reading.
    """
    if bits < 1:
        raise ValueError("bits must be positive")
    symbols = _random_symbols(password_length(bits))
    groups = [symbols[i : i + PASSWORD_GROUP] for i in range(0, len(symbols), PASSWORD_GROUP)]
    return "-".join(groups)


def generate_login() -> str:
    """A short code with no name in it: 8 symbols of the alphabet, lower case (~39 bits).

    Not a secret, only an address, so it is short enough to type from a paper slip.
    Collisions are rare (30^8 ~ 6.6e11 codes; among 10,000 logins the chance of any
    clash is ~ 1e-4) but possible: the caller must check uniqueness against existing
    credentials and draw again.
    """
    return _random_symbols(LOGIN_LENGTH).lower()


def new_salt() -> bytes:
    """A fresh 16-byte KDF salt, one per credential."""
    return secrets.token_bytes(SALT_BYTES)


def new_token() -> str:
    """A 256-bit endpoint token, URL-safe base64 (43 chars). Only its hash is stored."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 hex of the token's UTF-8: what the server keeps and compares."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
