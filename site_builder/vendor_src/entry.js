// Entry of the vendored crypto bundle (built by build.sh into
// ../static/vendor/otmetka-crypto.min.js). It exposes one global, OtmCrypto, used by
// unlock.js and login.js when WebCrypto is missing (plain-http school LAN = not a secure
// context) and when DecompressionStream('deflate-raw') is missing. PBKDF2 runs on
// hash-wasm's WebAssembly SHA-256 where WebAssembly may run, else on noble's plain JS.
// Both scripts always take the password and login normalisation from here, so the pages
// carry one copy of it; the bundle is inlined before them in every document.
import './compat.js';
import { normaliseLogin, normalisePassword } from './normalise.js';
import { pbkdf2Wasm } from './pbkdf2-wasm.js';
import { gcm } from '@noble/ciphers/aes.js';
import { hmac } from '@noble/hashes/hmac.js';
import { pbkdf2 } from '@noble/hashes/pbkdf2.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { inflateSync } from 'fflate';

var KEY_LEN = 32; // one SHA-256 block of PBKDF2 output = the AES-256 key

var queue = [];
var channel = null;

// Yield to the event loop so the progress bar can paint. A MessageChannel task is not
// clamped to 4 ms like nested setTimeout, nor throttled to 1 s in a background tab.
function yieldTask() {
  return new Promise(function (resolve) {
    if (typeof MessageChannel !== 'function') {
      setTimeout(resolve, 0);
      return;
    }
    if (!channel) {
      channel = new MessageChannel();
      channel.port1.onmessage = function () {
        var next = queue.shift();
        if (next) next();
      };
    }
    queue.push(resolve);
    channel.port2.postMessage(0);
  });
}

function checkIterations(iterations) {
  if (typeof iterations !== 'number' || !(iterations >= 1) || iterations % 1 !== 0) {
    throw new Error('PBKDF2: iterations must be a positive integer');
  }
}

// PBKDF2-HMAC-SHA256 with a 32-byte output that reports progress. noble's own
// pbkdf2Async yields but has no progress hook, so the one-block loop of RFC 8018 §5.2 is
// written here on noble's audited HMAC and SHA-256 (checked against noble's pbkdf2 and the
// shared known-answer vectors by the browser tests).
// onProgress(fraction in 0..1) is called after each time slice of about sliceMs.
async function pbkdf2Async(password, salt, iterations, onProgress, sliceMs) {
  checkIterations(iterations);
  var slice = sliceMs > 0 ? sliceMs : 40;
  var prf = hmac.create(sha256, password);
  var block = new Uint8Array(salt.length + 4); // salt || INT_32_BE(1)
  block.set(salt);
  block[salt.length + 3] = 1;
  var u = new Uint8Array(KEY_LEN);
  var work = prf._cloneInto();
  work.update(block).digestInto(u); // U1
  var t = u.slice();
  var done = 1;
  while (done < iterations) {
    var deadline = Date.now() + slice;
    do {
      var stop = Math.min(iterations, done + 1000);
      for (; done < stop; done++) {
        work = prf._cloneInto(work); // reuse the keyed midstates, no re-keying per round
        work.update(u).digestInto(u); // U_i = PRF(P, U_{i-1})
        for (var j = 0; j < KEY_LEN; j++) t[j] ^= u[j];
      }
    } while (done < iterations && Date.now() < deadline);
    if (onProgress) onProgress(done / iterations);
    if (done < iterations) await yieldTask();
  }
  if (onProgress && iterations === 1) onProgress(1);
  u.fill(0);
  block.fill(0);
  prf.destroy();
  work.destroy();
  return t;
}

function utf8(text) {
  return new TextEncoder().encode(text);
}

self.OtmCrypto = {
  pbkdf2: pbkdf2, // noble's reference: pbkdf2(sha256, password, salt, {c, dkLen})
  pbkdf2Async: pbkdf2Async, // (password, salt, iterations, onProgress?) -> Promise<32 bytes>
  // Same contract; rejects where WebAssembly is missing or the page's CSP refuses it.
  pbkdf2Wasm: function (password, salt, iterations, onProgress, sliceMs) {
    return pbkdf2Wasm(password, salt, iterations, onProgress, sliceMs, yieldTask, sha256);
  },
  sha256: sha256, // sha256(bytes) -> 32 bytes
  hmac: hmac,
  gcm: gcm, // gcm(key, iv, aad).decrypt(ct || tag)
  inflateSync: inflateSync, // raw deflate (no zlib header), as Python's wbits=-15
  utf8: utf8,
  normalisePassword: normalisePassword, // as site_builder/crypto.py normalise_password
  normaliseLogin: normaliseLogin, // as site_builder/crypto.py normalise_login
};
