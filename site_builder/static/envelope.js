/* otmetka envelope.js: the crypto of an encrypted page or file, with no DOM and no storage.
 *
 * Shipped code: ES2017, no external requests, must run on old Android browsers. Inlined in
 * the shell after the vendored bundle (window.OtmCrypto) and before unlock.js, which takes
 * these steps from window.OtmEnvelope; site_builder/crypto.py is the other side of each.
 * Envelopes v1 and v2: the header fields of each layout, the associated data (page id and
 * canonical header), PBKDF2 on WebCrypto or the bundle (WebAssembly or plain JS), v2's
 * per-file key (HKDF-SHA256), AES-256-GCM, the v2 framing and the raw inflate (a
 * DecompressionStream or the bundle's fflate). Errors carry a flag: err.otmBroken (the
 * envelope is malformed) or err.otmWrongKey (the tag failed: wrong key, another page,
 * tampering). Keys only pass through: nothing here keeps one.
 */
(function () {
  'use strict';

  var MAX_ITERATIONS = 2147483647; // WebCrypto takes an unsigned long; Python refuses more too
  var B64 = /^[A-Za-z0-9+/]*={0,2}$/;
  // Header fields of each envelope layout, sorted: site_builder/crypto.py _LAYOUTS.
  var LAYOUTS = {
    '1 pbkdf2-sha256': ['iter', 'iv', 'kdf', 'salt', 'v'],
    '2 pbkdf2-sha256': ['hs', 'iter', 'iv', 'kdf', 'salt', 'v'],
    '2 page-key': ['hs', 'iv', 'kdf', 'v'],
  };
  var HKDF_INFO = 'otmetka envelope v2';

  // ---- encoding helpers -------------------------------------------------------------

  // The one JS copy lives in the bundle (site_builder/vendor_src/normalise.js, as
  // site_builder/crypto.py normalise_password), which is inlined before this script.
  function normalisePassword(text) {
    return bundle().normalisePassword(text);
  }

  function utf8(text) {
    return new TextEncoder().encode(text);
  }

  function b64decode(text) {
    var bin = atob(text);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function b64encode(bytes) {
    var bin = '';
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin);
  }

  // ---- envelopes v1 and v2 -------------------------------------------------------------

  function flagged(message, flag) {
    var err = new Error(message);
    err[flag] = true;
    return err;
  }

  function brokenError(why) { return flagged('broken envelope: ' + why, 'otmBroken'); }

  function wrongKeyError() { return flagged('wrong key', 'otmWrongKey'); }

  function isBase64(text) {
    return typeof text === 'string' && B64.test(text);
  }

  function b64field(env, name) {
    var value = env[name];
    if (!isBase64(value)) throw brokenError(name);
    return b64decode(value);
  }

  function layoutOf(env) {
    var layout = env && typeof env.v === 'number' && LAYOUTS[env.v + ' ' + env.kdf];
    if (!layout) throw brokenError('version');
    return layout;
  }

  // Validates the envelope and returns its parts {v, salt?, hs?, iv, ct} (binary ones as bytes).
  function parseEnvelope(env) {
    var layout = layoutOf(env);
    var n = env.iter;
    if (layout.indexOf('iter') >= 0 &&
        (typeof n !== 'number' || n % 1 !== 0 || n < 1 || n > MAX_ITERATIONS)) {
      throw brokenError('iter');
    }
    var parts = { v: env.v, iv: b64field(env, 'iv'), ct: b64field(env, 'ct') };
    if (layout.indexOf('salt') >= 0) parts.salt = b64field(env, 'salt');
    if (layout.indexOf('hs') >= 0) parts.hs = b64field(env, 'hs');
    if (parts.iv.length !== 12 || parts.ct.length < 16 || (parts.hs && parts.hs.length !== 16)) {
      throw brokenError('iv/ct');
    }
    return parts;
  }

  // Canonical header, exactly as site_builder/crypto.py canonical_header(): the layout's
  // keys sorted, no whitespace. Values are validated ASCII, so JSON.stringify matches Python.
  function canonicalHeader(env) {
    return '{' + layoutOf(env).map(function (k) {
      return JSON.stringify(k) + ':' + JSON.stringify(env[k]);
    }).join(',') + '}';
  }

  function associatedData(pageId, env) {
    return utf8(pageId + '|' + canonicalHeader(env));
  }

  // ---- crypto on two paths ------------------------------------------------------------

  function hasWebCrypto() {
    return !!(window.crypto && window.crypto.subtle);
  }

  function bundle() {
    if (!window.OtmCrypto) throw new Error('otmetka-crypto bundle is missing');
    return window.OtmCrypto;
  }

  // Which PBKDF2 runs where WebCrypto is missing: the bundle's WebAssembly one (about 2.5
  // times faster), unless the engine has no WebAssembly or refuses to compile it.
  function hasWasm() {
    return typeof WebAssembly === 'object' && WebAssembly !== null;
  }

  // PBKDF2-HMAC-SHA256 on path webcrypto | wasm | noble -> 32 raw bytes. onProgress(fraction)
  // is called on the bundle's two paths only (WebCrypto tells nothing until done).
  function deriveKey(password, salt, iterations, path, onProgress) {
    var secret = utf8(normalisePassword(password));
    if (path !== 'webcrypto') {
      return Promise.resolve().then(function () {
        var run = path === 'wasm' ? bundle().pbkdf2Wasm : bundle().pbkdf2Async;
        return run(secret, salt, iterations, onProgress);
      });
    }
    var subtle = window.crypto.subtle;
    return subtle.importKey('raw', secret, { name: 'PBKDF2' }, false, ['deriveBits'])
      .then(function (base) {
        var params = { name: 'PBKDF2', hash: 'SHA-256', salt: salt, iterations: iterations };
        return subtle.deriveBits(params, base, 256);
      })
      .then(function (bits) { return new Uint8Array(bits); });
  }

  // v2: one file's AES key, HKDF-SHA256 (RFC 5869) of the credential's key with its salt.
  // Two HMACs of the bundle's noble code on both paths: WebCrypto would add nothing here.
  function fileKey(key, hs) {
    var C = bundle();
    var info = utf8(HKDF_INFO + '\x01'); // info || 0x01: the 32 bytes are T(1), one block
    return C.hmac(C.sha256, C.hmac(C.sha256, hs, key), info);
  }

  // v2 plaintext: 4-byte big-endian length, the deflated page, zero padding to the bucket.
  function unframe(bytes) {
    if (bytes.length < 4) throw brokenError('length');
    var n = bytes[0] * 16777216 + ((bytes[1] << 16) | (bytes[2] << 8) | bytes[3]);
    if (4 + n > bytes.length) throw brokenError('length');
    return bytes.subarray(4, 4 + n);
  }

  // AES-256-GCM open; a failed tag (wrong key, another page, tampering) -> otmWrongKey.
  function gcmOpen(key, iv, ct, aad, path) {
    if (path !== 'webcrypto') {
      return Promise.resolve().then(function () {
        return bundle().gcm(key, iv, aad).decrypt(ct);
      }).catch(function () { throw wrongKeyError(); });
    }
    var subtle = window.crypto.subtle;
    return subtle.importKey('raw', key, { name: 'AES-GCM' }, false, ['decrypt'])
      .then(function (k) {
        var params = { name: 'AES-GCM', iv: iv, additionalData: aad, tagLength: 128 };
        return subtle.decrypt(params, k, ct);
      })
      .then(function (buf) { return new Uint8Array(buf); }, function () { throw wrongKeyError(); });
  }

  // Which inflater runs: DecompressionStream('deflate-raw') (Chrome 103+, Safari 16.4+) or
  // fflate from the bundle. Older engines throw on the 'deflate-raw' format name.
  function inflatePath() {
    if (typeof DecompressionStream !== 'function' || typeof Response !== 'function' ||
        typeof Blob !== 'function' || !Blob.prototype.stream) return 'fflate';
    try {
      new DecompressionStream('deflate-raw');
      return 'stream';
    } catch (e) {
      return 'fflate';
    }
  }

  function inflateRaw(bytes, path) {
    if (path !== 'stream') {
      return Promise.resolve().then(function () { return bundle().inflateSync(bytes); });
    }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
    return new Response(stream).arrayBuffer().then(function (buf) { return new Uint8Array(buf); });
  }

  // Decrypts and inflates with the credential's key: resolves to the plaintext bytes.
  function openEnvelopeBytes(env, key, pageId, path, inflater) {
    var parts;
    return Promise.resolve().then(function () {
      parts = parseEnvelope(env);
      return parts.v === 1 ? key : fileKey(key, parts.hs);
    }).then(function (aesKey) {
      return gcmOpen(aesKey, parts.iv, parts.ct, associatedData(pageId, env), path);
    }).then(function (opened) {
      return inflateRaw(parts.v === 1 ? opened : unframe(opened), inflater || inflatePath());
    });
  }

  // Decrypts and inflates: resolves to the HTML fragment (a string).
  function openEnvelope(env, key, pageId, path, inflater) {
    return openEnvelopeBytes(env, key, pageId, path, inflater).then(function (plain) {
      return new TextDecoder('utf-8').decode(plain);
    });
  }

  window.OtmEnvelope = {
    normalisePassword: normalisePassword,
    b64encode: b64encode,
    b64decode: b64decode,
    isBase64: isBase64,
    brokenError: brokenError,
    canonicalHeader: canonicalHeader,
    associatedData: associatedData,
    parseEnvelope: parseEnvelope,
    hasWebCrypto: hasWebCrypto,
    hasWasm: hasWasm,
    inflatePath: inflatePath,
    deriveKey: deriveKey,
    fileKey: fileKey,
    openEnvelopeBytes: openEnvelopeBytes,
    openEnvelope: openEnvelope,
  };
})();
