// Password and login normalisation of the pages: the one JS copy, exposed on OtmCrypto for
// unlock.js and login.js. It must match site_builder/crypto.py normalise_password and
// normalise_login character for character (both sides are checked against the shared
// vectors), or a parent's typed password derives another key than the builder's.

// Same class as site_builder/crypto.py SEPARATOR_CLASS: whitespace, zero-width, dashes.
var SEPARATORS =
  /[\t\n\v\f\r \u00a0\u00ad\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff\-\u2010-\u2015\u2212]+/g;
// Cyrillic capitals typed on a Russian layout for the Latin letters they look like.
var LOOKALIKE = /[АВЕКМНОРСТХУ]/g;
var LOOKALIKE_MAP = {
  'А': 'A', 'В': 'B', 'Е': 'E', 'К': 'K', 'М': 'M', 'Н': 'H',
  'О': 'O', 'Р': 'P', 'С': 'C', 'Т': 'T', 'Х': 'X', 'У': 'Y',
};

export function normalisePassword(text) {
  return String(text)
    .toUpperCase()
    .replace(LOOKALIKE, function (c) { return LOOKALIKE_MAP[c]; })
    .replace(SEPARATORS, '');
}

// Logins are shown in lower case.
export function normaliseLogin(text) {
  return normalisePassword(text).toLowerCase();
}
