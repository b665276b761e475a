// PBKDF2-HMAC-SHA256 on hash-wasm's WebAssembly SHA-256, for pages opened where WebCrypto is
// missing (plain http on a school LAN). hash-wasm's own pbkdf2() calls into WebAssembly six
// times per round and copies every digest out, which makes it slower than noble's plain JS;
// here the keyed HMAC midstates are loaded straight into the module's state and each round
// is four calls and a 32-byte XOR, about 2.5 times faster than noble in Chromium.
//
// sha256.wasm is the binary that hash-wasm ships inside dist/index.esm.js, extracted and
// checked against hash-wasm's own fingerprint of it by build.sh. The module's contract
// (hash-wasm src/sha256.c): Hash_Init(256), Hash_Update(n) reads n bytes from the buffer at
// Hash_GetBuffer(), Hash_Final() writes the digest there; Hash_GetState() points at the
// context {message[16], length, hash[8], digest_length} of STATE_SIZE bytes.
import wasmBytes from './node_modules/.otmetka/sha256.wasm';

var BLOCK = 64;
var KEY_LEN = 32;
var ROUNDS_PER_CHECK = 1000;

var instancePromise = null;

// Rejects where there is no WebAssembly or the page's CSP refuses to compile it
// (script-src needs 'wasm-unsafe-eval'); the caller then falls back to noble.
function loadModule() {
  if (!instancePromise) {
    instancePromise = Promise.resolve().then(function () {
      if (typeof WebAssembly !== 'object' || typeof WebAssembly.instantiate !== 'function') {
        throw new Error('no WebAssembly');
      }
      return WebAssembly.instantiate(wasmBytes, {});
    }).then(function (result) {
      return result.instance.exports;
    });
    instancePromise.catch(function () { instancePromise = null; });
  }
  return instancePromise;
}

function checkIterations(iterations) {
  if (typeof iterations !== 'number' || !(iterations >= 1) || iterations % 1 !== 0) {
    throw new Error('PBKDF2: iterations must be a positive integer');
  }
}

// The SHA-256 state after one block of key XOR pad (RFC 2104), as a copy of the context.
function keyedState(X, mem, key, padByte, stateAt, stateSize, bufferAt) {
  var block = new Uint8Array(BLOCK);
  block.set(key);
  for (var i = 0; i < BLOCK; i++) block[i] ^= padByte;
  X.Hash_Init(256);
  mem.set(block, bufferAt);
  X.Hash_Update(BLOCK);
  block.fill(0);
  return mem.slice(stateAt, stateAt + stateSize);
}

function Hmac(X, password, hashKey) {
  var mem = new Uint8Array(X.memory.buffer);
  this.X = X;
  this.mem = mem;
  this.buffer = X.Hash_GetBuffer();
  this.state = X.Hash_GetState();
  var size = new DataView(X.memory.buffer).getUint32(X.STATE_SIZE.value, true);
  // A password longer than a block is hashed first (RFC 2104); ours are 16 characters.
  var key = password.length > BLOCK ? hashKey(password) : password;
  this.inner = keyedState(X, mem, key, 0x36, this.state, size, this.buffer);
  this.outer = keyedState(X, mem, key, 0x5c, this.state, size, this.buffer);
}

// HMAC of the n bytes already in the buffer; the MAC is left in the buffer's first 32 bytes.
Hmac.prototype.inPlace = function (n) {
  this.mem.set(this.inner, this.state);
  this.X.Hash_Update(n);
  this.X.Hash_Final();
  this.mem.set(this.outer, this.state);
  this.X.Hash_Update(KEY_LEN);
  this.X.Hash_Final();
};

Hmac.prototype.destroy = function () {
  this.inner.fill(0);
  this.outer.fill(0);
  this.mem.fill(0, this.state, this.state + this.inner.length);
  this.mem.fill(0, this.buffer, this.buffer + BLOCK);
};

// (password, salt, iterations, onProgress?, sliceMs?) -> Promise<32 bytes>. Runs in time
// slices of about sliceMs, reporting the fraction done after each and yielding between them.
export function pbkdf2Wasm(password, salt, iterations, onProgress, sliceMs, yieldTask, hashKey) {
  return loadModule().then(function (X) {
    checkIterations(iterations);
    var slice = sliceMs > 0 ? sliceMs : 40;
    var mac = new Hmac(X, password, hashKey);
    var mem = mac.mem;
    var at = mac.buffer;
    var first = new Uint8Array(salt.length + 4); // salt || INT_32_BE(1)
    first.set(salt);
    first[salt.length + 3] = 1;
    mem.set(first, at);
    mac.inPlace(first.length); // U1
    var u = mem.slice(at, at + KEY_LEN);
    var t = u.slice();
    var done = 1;

    // U is kept outside the module between slices: another derivation may run meanwhile.
    function run() {
      mem.set(u, at);
      var deadline = Date.now() + slice;
      do {
        var stop = Math.min(iterations, done + ROUNDS_PER_CHECK);
        for (; done < stop; done++) {
          mac.inPlace(KEY_LEN); // U_i = PRF(P, U_{i-1}), in place in the buffer
          for (var j = 0; j < KEY_LEN; j++) t[j] ^= mem[at + j];
        }
      } while (done < iterations && Date.now() < deadline);
      u.set(mem.subarray(at, at + KEY_LEN));
      if (onProgress) onProgress(done / iterations);
      if (done < iterations) return yieldTask().then(run);
      mac.destroy();
      u.fill(0);
      first.fill(0);
      return t;
    }

    return run();
  });
}
