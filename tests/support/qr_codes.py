"""QR codes read back from a printed PDF, as a phone camera would: each page rastered by
poppler (pdftoppm) and scanned by zbar (zbarimg)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pypdf import PdfReader


def read_qr_codes(pdf: Path, folder: Path) -> list[str]:
    """Every QR code on the printed pages. A camera tries frame after frame, so a code
    counts as read if a scan at either resolution finds it."""
    codes: list[str] = []
    for page in range(1, len(PdfReader(pdf).pages) + 1):
        found: set[str] = set()
        for dpi in (200, 300):
            found |= _scan_page(pdf, page, dpi, folder)
        codes += sorted(found)
    return codes


def _scan_page(pdf: Path, page: int, dpi: int, folder: Path) -> set[str]:
    folder.mkdir(exist_ok=True)
    image = folder / f"page-{page}-{dpi}"
    pages = ["-f", str(page), "-l", str(page), "-singlefile"]
    subprocess.run(["pdftoppm", "-r", str(dpi), *pages, "-png", str(pdf), str(image)], check=True)
    found = subprocess.run(
        ["zbarimg", "-q", "--raw", f"{image}.png"], capture_output=True, text=True, check=False
    )
    # 4: no code on this page, which is an answer too
    assert found.returncode in (0, 4), found.stderr
    return set(found.stdout.split())
