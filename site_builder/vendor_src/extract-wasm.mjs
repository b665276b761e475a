// Writes hash-wasm's SHA-256 WebAssembly binary to node_modules/.otmetka/sha256.wasm for
// the bundle (run by build.sh). hash-wasm publishes its binaries only base64-encoded
// inside dist/index.esm.js, each next to its name and the first 4 bytes of its SHA-1;
// the fingerprint is checked, so a changed layout stops the build instead of shipping junk.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

const source = readFileSync('node_modules/hash-wasm/dist/index.esm.js', 'utf8');
const found = source.match(
  /var name\$(\w+) = "sha256";\s*var data\$\1 = "([A-Za-z0-9+/=]+)";\s*var hash\$\1 = "([0-9a-f]{8})";/
);
if (!found) throw new Error('hash-wasm dist/index.esm.js: no sha256 binary found');
const bytes = Buffer.from(found[2], 'base64');
const fingerprint = createHash('sha1').update(bytes).digest('hex').slice(0, 8);
if (fingerprint !== found[3]) {
  throw new Error(`hash-wasm sha256 binary: SHA-1 ${fingerprint}, expected ${found[3]}`);
}
mkdirSync('node_modules/.otmetka', { recursive: true });
writeFileSync('node_modules/.otmetka/sha256.wasm', bytes);
console.log(`extracted hash-wasm sha256.wasm: ${bytes.length} bytes, fingerprint ${fingerprint}`);
