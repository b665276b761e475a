#!/usr/bin/env bash
# Rebuild the vendored crypto bundle and its licence file from the exact versions pinned
# in package-lock.json. Needs Node.js >= 20.19 and npm; run from anywhere:
#   bash site_builder/vendor_src/build.sh
# The output is committed, so building the site never needs Node.
set -euo pipefail
cd "$(dirname "$0")"

out_dir=../static/vendor
out="$out_dir/otmetka-crypto.min.js"
licences="$out_dir/LICENSES.txt"
mkdir -p "$out_dir"

# --ignore-scripts: esbuild's postinstall only swaps its JS launcher for the native binary.
npm ci --ignore-scripts --no-audit --no-fund

version_of() { node -p "require('./node_modules/$1/package.json').version"; }
ciphers=$(version_of @noble/ciphers)
hashes=$(version_of @noble/hashes)
fflate=$(version_of fflate)
hashwasm=$(version_of hash-wasm)

# hash-wasm's SHA-256 WebAssembly binary, checked against its fingerprint (pbkdf2-wasm.js).
node extract-wasm.mjs

./node_modules/.bin/esbuild entry.js \
  --bundle --minify --format=iife --target=es2017 \
  --inject:./bigint.js --legal-comments=eof --charset=utf8 --loader:.wasm=binary \
  --banner:js="/*! otmetka-crypto: @noble/ciphers $ciphers, @noble/hashes $hashes, fflate $fflate, hash-wasm $hashwasm (MIT, see LICENSES.txt) */" \
  --outfile="$out"

{
  echo "Third-party code bundled into otmetka-crypto.min.js (built by site_builder/vendor_src/build.sh)."
  for pkg in @noble/ciphers @noble/hashes fflate hash-wasm; do
    echo
    echo "================================================================================"
    echo "$pkg $(version_of "$pkg")"
    echo "================================================================================"
    cat "node_modules/$pkg/LICENSE"
  done
  echo
  echo "hash-wasm's SHA-256 WebAssembly binary is built from its src/sha256.c, which says:"
  sed -n '1,/\*\//p' node_modules/hash-wasm/src/sha256.c
} >"$licences"

bytes=$(wc -c <"$out")
gz=$(gzip -9c "$out" | wc -c)
echo "wrote $out: $bytes bytes minified, $gz bytes gzipped"

# Our own page scripts, minified: every page carries them inline, and a parent on a slow
# line pays for every byte. Each names the SHA-256 of its source, so a test notices a
# source edited without running this script.
min_dir=../static/min
mkdir -p "$min_dir"
for name in envelope.js unlock.js save.js page.js login.js download.js staff.js; do
  src=../static/$name
  sum=$(sha256sum "$src" | cut -d' ' -f1)
  ./node_modules/.bin/esbuild "$src" \
    --minify --target=es2017 --charset=utf8 --legal-comments=none --log-level=warning \
    --banner:js="/*! otmetka $name sha256:$sum (minified by site_builder/vendor_src/build.sh) */" \
    --outfile="$min_dir/$name"
  echo "wrote $min_dir/$name: $(wc -c <"$src") -> $(wc -c <"$min_dir/$name") bytes"
done
