// Injected by esbuild (--inject) in place of the global BigInt inside the bundle only, so
// the page's global object is left alone. Where the engine has no BigInt (Chrome < 67,
// Safari < 14) the bundle's few BigInt(n) calls receive lengths, which are safe integers,
// and compat.js's DataView.setBigUint64 accepts numbers.
var nativeBigInt = typeof self !== 'undefined' ? self.BigInt : undefined;

function numberBigInt(value) {
  return Number(value);
}

var BigIntOrNumber = typeof nativeBigInt === 'function' ? nativeBigInt : numberBigInt;
export { BigIntOrNumber as BigInt };
