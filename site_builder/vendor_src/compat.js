// Runtime gaps that @noble/* 2.x touches on engines older than ~2021 (Chrome < 93,
// Safari < 15.4): the bundle must run on old Android phones and iPhones that cannot update.
// esbuild lowers syntax to ES2017 but never adds runtime APIs, so the few that are used are
// filled here, and only where missing, before any noble module is evaluated.
var root = typeof self !== 'undefined' ? self : typeof window !== 'undefined' ? window : {};

if (typeof globalThis === 'undefined') {
  // noble's nextTick() reads globalThis.
  root.globalThis = root;
}

if (typeof Object.hasOwn !== 'function') {
  // noble's option checks call Object.hasOwn.
  Object.defineProperty(Object, 'hasOwn', {
    configurable: true,
    writable: true,
    value: function hasOwn(obj, key) {
      return Object.prototype.hasOwnProperty.call(Object(obj), key);
    },
  });
}

if (typeof DataView.prototype.setBigUint64 !== 'function') {
  // GCM writes bit lengths as 64-bit words. Engines without BigInt lack this method; the
  // bundle then passes plain numbers (see bigint.js), always safe integers (< 2^53).
  Object.defineProperty(DataView.prototype, 'setBigUint64', {
    configurable: true,
    writable: true,
    value: function setBigUint64(offset, value, littleEndian) {
      var v = Number(value);
      var hi = Math.floor(v / 4294967296) >>> 0;
      var lo = v >>> 0;
      this.setUint32(offset, littleEndian ? lo : hi, littleEndian);
      this.setUint32(offset + 4, littleEndian ? hi : lo, littleEndian);
    },
  });
}
