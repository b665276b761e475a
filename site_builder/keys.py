"""Site-level keys: the site secret on disk, the public salt, per-credential endpoint tokens.

The endpoint token is derived from the credential's cached page key rather than stored:
the builder must embed it in every rebuilt page, the server keeps only its hash, and a
stored plaintext token would be one more secret to leak.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

_TOKEN_LABEL = b"otmetka endpoint token v1"
_SALT_LABEL = b"otmetka public salt v1"


def load_or_create_secret(path: Path) -> bytes:
    """The site secret (32 random bytes, hex in an owner-only file), made on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_secret(path, secrets.token_bytes(32))
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def write_secret(path: Path, secret: bytes) -> None:
    """A new owner-only file (from its first byte) holding `secret` as hex, fsynced."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(secret.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def public_salt(secret: bytes) -> str:
    """Published in index.html; derived so that a restored secret restores every page id."""
    return hmac.new(secret, _SALT_LABEL, hashlib.sha256).hexdigest()[:32]


def endpoint_token(derived_key: bytes) -> str:
    """The token a page posts with; only `hash_token(token)` is kept on the server."""
    digest = hmac.new(derived_key, _TOKEN_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
