#!/usr/bin/env bash
# Fetch the pinned axe-core (MPL-2.0) used by the browser tests only; never shipped.
set -euo pipefail; cd "$(dirname "$0")"; t=$(mktemp -d); npm pack axe-core@4.14.1 --pack-destination "$t" --silent >/dev/null && tar -xzf "$t"/axe-core-4.14.1.tgz -C "$t" && cp "$t"/package/axe.min.js . && cp "$t"/package/LICENSE LICENSE-axe-core.txt && rm -rf "$t"
