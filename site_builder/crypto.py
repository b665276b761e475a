"""Page encryption (envelope v1), credentials and tokens.

Python encrypts; the browser (``static/unlock.js``) decrypts with WebCrypto or, outside a
secure context, with the vendored pure-JS bundle. Both sides must agree byte for byte on:

* password normalisation (:func:`normalise_password`) and login normalisation
  (:func:`normalise_login`), mirrored in ``unlock.js`` and ``login.js``;
* the page id (:func:`page_id_for_login`), mirrored in ``login.js``;
* the key: PBKDF2-HMAC-SHA256 of the UTF-8 normalised password, 32 bytes;
* the associated data (:func:`associated_data`), mirrored in ``unlock.js``;
* the plaintext transform: raw deflate (no zlib header) before AES-256-GCM.

``tests/vectors/envelope-v1.json`` pins all of this with known answers for both sides.
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
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

ENVELOPE_VERSION = 1
KDF_NAME = "pbkdf2-sha256"
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
# contain Cyrillic, so the mapping can only help. unlock.js and login.js use the same table.
_CYRILLIC_LOOKALIKES = str.maketrans("АВЕКМНОРСТХУ", "ABEKMHOPCTXY")
# Spaces of every kind (listed, since Python's and JS's \\s differ), zero-width and soft
# hyphen characters, and the hyphen, minus and dashes that phones substitute for "-".
# unlock.js and login.js carry the same class, character for character.
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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, field: str) -> bytes:
    if not isinstance(value, str) or not _B64.match(value):
        raise PageCryptoError(f"envelope field {field!r} is not base64")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise PageCryptoError(f"envelope field {field!r} is not base64") from exc


def canonical_header(envelope: Mapping[str, Any]) -> str:
    """The envelope header as it is authenticated: canonical JSON of v, kdf, iter, salt, iv.

    Canonical means: exactly the keys ``iter, iv, kdf, salt, v`` in that (sorted) order,
    separators ``,`` and ``:`` with no whitespace, integers in decimal, strings as JSON
    strings. The values are ASCII (base64 and a fixed name), so the JS side writes the same
    string by concatenation: ``{"iter":600000,"iv":"…","kdf":"pbkdf2-sha256","salt":"…","v":1}``.
    """
    header = {k: envelope[k] for k in ("v", "kdf", "iter", "salt", "iv")}
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def associated_data(page_id: str, envelope: Mapping[str, Any]) -> bytes:
    """GCM associated data: UTF-8 of ``page_id + "|" + canonical_header(envelope)``.

    Binding the page id stops a ciphertext being moved to another person's page; binding
    the header stops a downgrade of the iteration count or a swap of salt or iv.
    """
    return f"{page_id}|{canonical_header(envelope)}".encode()


def _deflate(data: bytes) -> bytes:
    # Raw deflate: what inflate-raw reads. Level 6, not 9: pages come out about 1 % larger
    # and a full build compresses them nearly twice as fast.
    compressor = zlib.compressobj(level=6, wbits=-15)
    return compressor.compress(data) + compressor.flush()


def _inflate(data: bytes) -> bytes:
    decompressor = zlib.decompressobj(wbits=-15)
    out = decompressor.decompress(data, _MAX_PLAINTEXT)
    if not decompressor.eof or decompressor.unconsumed_tail:
        raise PageCryptoError("compressed page is truncated or too large")
    return out


def encrypt_page(
    plaintext: bytes,
    key: bytes,
    salt: bytes,
    page_id: str,
    iterations: int,
    iv: bytes | None = None,
) -> dict[str, Any]:
    """Encrypt one page into envelope v1.

    ``key`` must be ``derive_key(password, salt, iterations)``; the builder caches it per
    credential, so a rebuild costs one AES pass. ``iv`` is random unless given (tests only):
    never reuse an iv with the same key.
    """
    if len(key) != KEY_BYTES:
        raise PageCryptoError("key must be 32 bytes")
    _check_iterations(iterations)
    nonce = secrets.token_bytes(IV_BYTES) if iv is None else iv
    if len(nonce) != IV_BYTES:
        raise PageCryptoError("iv must be 12 bytes")
    envelope: dict[str, Any] = {
        "v": ENVELOPE_VERSION,
        "kdf": KDF_NAME,
        "iter": iterations,
        "salt": _b64(salt),
        "iv": _b64(nonce),
    }
    aad = associated_data(page_id, envelope)
    envelope["ct"] = _b64(AESGCM(key).encrypt(nonce, _deflate(plaintext), aad))
    return envelope


def parse_envelope(envelope: Mapping[str, Any]) -> tuple[bytes, bytes, bytes]:
    """Check an envelope's shape and return (salt, iv, ct); raise PageCryptoError if bad."""
    if envelope.get("v") != ENVELOPE_VERSION or envelope.get("kdf") != KDF_NAME:
        raise PageCryptoError("unsupported envelope version or kdf")
    _check_iterations(envelope.get("iter"))
    iv = _unb64(envelope.get("iv"), "iv")
    if len(iv) != IV_BYTES:
        raise PageCryptoError("envelope 'iv' must be 12 bytes")
    ct = _unb64(envelope.get("ct"), "ct")
    if len(ct) < 16:  # not even a GCM tag
        raise PageCryptoError("envelope 'ct' is too short")
    return _unb64(envelope.get("salt"), "salt"), iv, ct


def decrypt_page(envelope: Mapping[str, Any], key: bytes, page_id: str) -> bytes:
    """Inverse of :func:`encrypt_page` (used by tests and tools; browsers use unlock.js)."""
    _salt, iv, ct = parse_envelope(envelope)
    if len(key) != KEY_BYTES:
        raise PageCryptoError("key must be 32 bytes")
    try:
        compressed = AESGCM(key).decrypt(iv, ct, associated_data(page_id, envelope))
    except InvalidTag as exc:
        raise DecryptionError("wrong key or tampered page") from exc
    return _inflate(compressed)


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
