"""Write tests/vectors/envelope-v1.json: known answers for envelope v1.

Run once (``python tests/vectors/make_vectors.py``) and commit the output. The Python tests
(tests/site_builder/test_crypto.py) and the browser tests (tests/browser/) both check every
vector, so the Python builder, unlock.js, login.js and the vendored bundle cannot drift apart.
All inputs are derived from fixed labels, so a re-run gives the same keys and headers
(the ciphertext too, as long as ISA-L deflates at crypto.DEFLATE_LEVEL as it did here).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from otmetka.site_builder import crypto

OUT = Path(__file__).with_name("envelope-v1.json")
PUBLIC_SALT = "school-42-demo"


def _fixed(label: str, size: int) -> bytes:
    return hashlib.sha256(f"otmetka test vector {label}".encode()).digest()[:size]


def _large_plaintext() -> str:
    # About 30 KB over several deflate blocks, so fflate and DecompressionStream both
    # handle more than a toy input.
    rows = [
        f"<tr><td>{day:02d}.11.2026</td><td>Математика</td><td>{5 - day % 3}</td>"
        f"<td>Решить № {100 + day * 7 % 53}–{110 + day % 9}, повторить §{day % 12}</td></tr>"
        for day in range(1, 181)
    ]
    return "<section><h2>Оценки</h2><table>" + "".join(rows) + "</table></section>"


CASES: list[dict[str, Any]] = [
    {
        "name": "basic",
        "login": "k7mp2x4q",
        "password": "K7MP-2X4Q-ABCD-EF23",
        "iterations": 1000,
        "plaintext": "<section><h2>Оценки</h2><p>Математика: 5, 4-, зачёт</p></section>",
    },
    {
        # Lower case, Cyrillic look-alikes, en/em dashes, a no-break space, a tab.
        "name": "messy-input",
        "login": " К7МР–2x4Q\t",
        "password": " k7мр 2x4q\u2014abcd\u00a0ef23 ",
        "iterations": 1000,
        "plaintext": "",
    },
    {
        "name": "large",
        "login": "zz99aa88",
        "password": "ZZ99-AA88-BB77-CC66",
        "iterations": 2000,
        "plaintext": _large_plaintext(),
    },
    {
        "name": "default-iterations",
        "login": "h3r5t7v9",
        "password": "H3R5-T7V9-WXYZ-2345",
        "iterations": crypto.DEFAULT_ITERATIONS,
        "plaintext": "<p>Домашнее задание: выучить стихотворение.</p>",
    },
]


def make_vector(case: dict[str, Any]) -> dict[str, Any]:
    name = case["name"]
    salt, iv = _fixed(f"{name} salt", crypto.SALT_BYTES), _fixed(f"{name} iv", crypto.IV_BYTES)
    page_id = crypto.page_id_for_login(case["login"], PUBLIC_SALT)
    key = crypto.derive_key(case["password"], salt, case["iterations"])
    plaintext = case["plaintext"].encode("utf-8")
    envelope = crypto.encrypt_page(plaintext, key, salt, page_id, case["iterations"], iv=iv)
    return {
        **case,
        "login_normalised": crypto.normalise_login(case["login"]),
        "public_salt": PUBLIC_SALT,
        "page_id": page_id,
        "password_normalised": crypto.normalise_password(case["password"]),
        "salt_hex": salt.hex(),
        "iv_hex": iv.hex(),
        "key_hex": key.hex(),
        "header": crypto.canonical_header(envelope),
        "aad_hex": crypto.associated_data(page_id, envelope).hex(),
        "envelope": envelope,
    }


def main() -> None:
    vectors = {"format": "otmetka-envelope-vectors", "version": 1}
    document = {**vectors, "vectors": [make_vector(case) for case in CASES]}
    OUT.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(CASES)} vectors)")


if __name__ == "__main__":
    main()
