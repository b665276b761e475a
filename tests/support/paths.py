"""Where the project's files are, for tests that read committed docs and data."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
VECTORS = TESTS / "vectors"
GOLDEN = TESTS / "golden"
ARTIFACTS = TESTS / "artifacts"
