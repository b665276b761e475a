/* otmetka login.js: the login page (output/index.html).
 *
 * Shipped code: ES2017, no external requests. Needs window.OtmCrypto (the vendored bundle,
 * inlined before this script): the normalisation always, SHA-256 where WebCrypto is missing.
 *
 * DOM contract (made by site_builder/shell.py render_login_page):
 *   <meta name="otm-public-salt" content="…">
 *   form #otm-login-form with #otm-login, #otm-password, #otm-show («Показать пароль»),
 *   #otm-remember, #otm-submit;
 *   the aria-live error line #otm-error.
 * The page id is hex SHA-256(public salt + ":" + normalised login), first 32 chars, as in
 * site_builder/crypto.py page_id_for_login. The password is handed to the page through
 * sessionStorage "otm:handoff:<page id>" = {"password":…,"remember":bool,"login":…}, which
 * unlock.js deletes as soon as it reads it; then the browser goes to p/<page id>.html
 * (relative, so it works from file:// and any mirror). Without sessionStorage the page
 * simply asks for the password again. The password never goes into a URL it sends.
 * One request: the browser goes to the page at once, with no HEAD first (a round trip
 * less on a slow line). For a login without a page `otmetka serve` answers 404 with a page
 * that comes back here as index.html#notfound=<page id>: the login and password are put
 * back from the handoff, which is deleted, and the message says the login is wrong.
 * Prefill: index.html#login=<login> (the QR code of a credential slip) fills in the login;
 * #login=…&password=… (slips printed with --qr-password) the password too. The fragment is
 * never sent to a server, and it is removed from the address bar and history at once.
 * For tests: window.OtmLogin = {normaliseLogin, normalisePassword, pageIdFor}.
 */
(function () {
  'use strict';

  var HANDOFF_PREFIX = 'otm:handoff:';
  var PAGE_ID_CHARS = 32;
  var MSG = {
    noLogin: 'Введите логин.',
    noPassword: 'Введите пароль.',
    notFound: 'Страница для этого логина не найдена. Проверьте логин.',
    failed: 'Не удалось войти. Обновите страницу и попробуйте ещё раз.',
  };

  // The vendored bundle, inlined before this script, holds the one JS copy of the
  // normalisation (site_builder/vendor_src/normalise.js, as site_builder/crypto.py).
  function bundle() {
    if (!window.OtmCrypto) throw new Error('otmetka-crypto bundle is missing');
    return window.OtmCrypto;
  }

  function normalisePassword(text) {
    return bundle().normalisePassword(text);
  }

  function normaliseLogin(text) {
    return bundle().normaliseLogin(text);
  }

  function toHex(bytes) {
    var out = '';
    for (var i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
    return out;
  }

  // SHA-256 with WebCrypto where it exists (secure contexts), else the vendored bundle.
  function sha256(bytes) {
    if (window.crypto && window.crypto.subtle) {
      return window.crypto.subtle.digest('SHA-256', bytes).then(function (buf) {
        return new Uint8Array(buf);
      });
    }
    return Promise.resolve().then(function () { return bundle().sha256(bytes); });
  }

  function pageIdFor(login, publicSalt) {
    var bytes = new TextEncoder().encode(publicSalt + ':' + normaliseLogin(login));
    return sha256(bytes).then(function (digest) { return toHex(digest).slice(0, PAGE_ID_CHARS); });
  }

  function handOff(pageId, login, password, remember) {
    try {
      var data = JSON.stringify({ password: password, remember: remember, login: login });
      window.sessionStorage.setItem(HANDOFF_PREFIX + pageId, data);
    } catch (e) { /* no sessionStorage: the page will ask for the password itself */ }
  }

  // The handoff of a page that was not there, read and deleted; null if there is none.
  function takeBack(pageId) {
    try {
      var name = HANDOFF_PREFIX + pageId;
      var data = JSON.parse(window.sessionStorage.getItem(name) || 'null');
      window.sessionStorage.removeItem(name);
      return data && typeof data === 'object' ? data : null;
    } catch (e) {
      return null;
    }
  }

  function byId(id) {
    return document.getElementById(id);
  }

  function setBusy(busy) {
    byId('otm-submit').disabled = busy;
  }

  function showError(text, focusId) {
    byId('otm-error').textContent = text;
    if (focusId) byId(focusId).focus();
  }

  function onSubmit(event) {
    event.preventDefault();
    var login = byId('otm-login').value;
    var passwordInput = byId('otm-password');
    if (!normaliseLogin(login)) return showError(MSG.noLogin, 'otm-login');
    if (!normalisePassword(passwordInput.value)) return showError(MSG.noPassword, 'otm-password');
    var salt = document.querySelector('meta[name="otm-public-salt"]').getAttribute('content');
    var remember = byId('otm-remember').checked;
    showError('');
    setBusy(true);
    pageIdFor(login, salt).then(function (pageId) {
      setBusy(false);
      handOff(pageId, login, passwordInput.value, remember);
      passwordInput.value = ''; // not restored by Back from the page
      passwordInput.type = 'password';
      byId('otm-show').checked = false;
      location.assign('p/' + pageId + '.html');
    }).catch(function (err) {
      setBusy(false);
      showError(MSG.failed);
      if (window.console) console.error(err);
    });
  }

  // Back from a page that was not there (#notfound=<page id>): what was typed, and why.
  function notFound(pageId) {
    var typed = /^[0-9a-f]{16,64}$/.test(pageId) ? takeBack(pageId) : null;
    showError(MSG.notFound);
    if (!typed || typeof typed.login !== 'string') return 'otm-login';
    byId('otm-login').value = typed.login;
    if (typeof typed.password === 'string') byId('otm-password').value = typed.password;
    byId('otm-remember').checked = typed.remember === true;
    return 'otm-login';
  }

  // The login (and password) from the address fragment; returns the field to focus.
  function prefill() {
    var hash = location.hash.replace(/^#/, '');
    if (!hash || typeof URLSearchParams !== 'function') return 'otm-login';
    var params = new URLSearchParams(hash);
    var login = params.get('login');
    var password = params.get('password');
    try {
      history.replaceState(null, '', location.pathname + location.search);
    } catch (e) { /* some file:// pages refuse: the fragment only stays in this tab */ }
    if (params.has('notfound')) return notFound(params.get('notfound'));
    if (!login) return 'otm-login';
    byId('otm-login').value = login;
    if (!password) return 'otm-password';
    byId('otm-password').value = password;
    return 'otm-submit';
  }

  function start() {
    var form = byId('otm-login-form');
    form.addEventListener('submit', onSubmit);
    var show = byId('otm-show');
    show.addEventListener('change', function () {
      byId('otm-password').type = show.checked ? 'text' : 'password'; // long codes are easier seen
    });
    var focus = prefill();
    form.hidden = false;
    byId(focus).focus();
  }

  window.OtmLogin = {
    normaliseLogin: normaliseLogin,
    normalisePassword: normalisePassword,
    pageIdFor: pageIdFor,
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
