/* otmetka unlock.js: opens an encrypted page (envelope v1 or v2) in the browser.
 *
 * Shipped code: ES2017, no external requests, must run on old Android browsers.
 *
 * DOM contract (the shell is made by site_builder/shell.py):
 *   <meta name="otm-page-id" content="<hex page id>">
 *   <meta name="otm-remember-days" content="N">      0 hides «Запомнить на этом устройстве»
 *   a script element, type "application/json", id "otm-envelope": {"v":2,"kdf":…,"ct":…}
 *   (v2: the AES key is HKDF-SHA256 of the password's PBKDF2 key with the file's salt "hs",
 *   and the plaintext is framed: 4-byte length, deflated page, zero padding; see crypto.py)
 *   <main id="otm-app"> holding #otm-lock, which holds: form #otm-form (hidden until this
 *     script shows it) with #otm-password, #otm-show («Показать пароль»), #otm-remember
 *     (in #otm-remember-row) and #otm-submit; #otm-progress (#otm-progress-bar, #otm-progress-text, #otm-progress-pct);
 *     and the aria-live error line #otm-error.
 * After unlocking, the decrypted fragment replaces the content of #otm-app and a bar
 * #otm-bar with the button #otm-logout («Выйти») is inserted before it.
 * On <html>: data-otm-state = locked | unlocking | unlocked | broken;
 *   data-crypto-path = webcrypto | noble (AES-GCM), data-kdf-path = webcrypto | wasm | noble
 *   (PBKDF2), or remembered (no KDF ran), and data-inflate-path = stream | fflate (when open).
 * Storage: localStorage "otm:key:<page id>" = {"v":1,"key":<base64 derived key>,"exp":<ms>}
 *   (opt-in, never the password); sessionStorage "otm:handoff:<page id>" =
 *   {"password":…,"remember":bool}, left by login.js and deleted here as soon as it is read.
 * Hook: scripts of the decrypted fragment never run. A trusted script inlined after this one
 *   may define window.OtmPage = {init(root, info), destroy(root)}; init is called after the
 *   content is inserted (info = {pageId, cryptoPath, logout}), destroy before «Выйти».
 * Events on document, for scripts that must not take the OtmPage hook: "otm:unlocked"
 *   after init (detail = {pageId, cryptoPath}) and "otm:locked" before destroy.
 * Files: OtmUnlock.openFile(envelope, fileId) decrypts another envelope (v1, or a v2 file)
 *   sealed with this page's key and fileId as its id (static/download.js: the class teacher's extracts PDF);
 *   it resolves to the bytes, and rejects while the page is locked. The key never leaves
 *   this script.
 * The crypto steps are static/envelope.js's (window.OtmEnvelope), inlined before this one.
 * For tests: window.OtmUnlock exposes the crypto steps (see the end of this file).
 */
(function () {
  'use strict';

  var KEY_PREFIX = 'otm:key:';
  var HANDOFF_PREFIX = 'otm:handoff:';
  var DAY_MS = 86400000;
  var MONTHS = ['января', 'февраля', 'марта', 'апреля', 'мая', 'июня', 'июля', 'августа',
    'сентября', 'октября', 'ноября', 'декабря'];
  var MSG = {
    wrong: 'Неверный пароль. Проверьте и попробуйте ещё раз.',
    empty: 'Введите пароль.',
    checking: 'Проверяем пароль…',
    opening: 'Открываем страницу…',
    broken: 'Не удалось открыть страницу: файл повреждён или устарел. Загрузите его заново.',
    opened: 'Страница открыта.',
  };

  // The envelope steps (static/envelope.js, inlined before this script).
  var E = window.OtmEnvelope;

  // The key of the page while it is open, for OtmUnlock.openFile; null while locked.
  var opened = null;

  function openFile(env, fileId) {
    if (!opened) return Promise.reject(new Error('the page is locked'));
    return E.openEnvelopeBytes(env, opened.key, fileId, opened.path, opened.inflater);
  }

  function announce(name, detail) {
    try {
      document.dispatchEvent(new CustomEvent(name, { detail: detail }));
    } catch (e) {
      if (window.console) console.error(e);
    }
  }

  // ---- storage (any access may throw: private mode, disabled storage, file://) -------

  function storageGet(kind, name) {
    try {
      return window[kind] ? window[kind].getItem(name) : null;
    } catch (e) {
      return null;
    }
  }

  function storageSet(kind, name, value) {
    try {
      window[kind].setItem(name, value);
      return true;
    } catch (e) {
      return false;
    }
  }

  function storageRemove(kind, name) {
    try {
      if (window[kind]) window[kind].removeItem(name);
    } catch (e) { /* nothing to forget */ }
  }

  function parseJson(text) {
    try {
      return JSON.parse(text);
    } catch (e) {
      return null;
    }
  }

  // The one-shot password from login.js: read once, deleted at once.
  function takeHandoff(pageId) {
    var name = HANDOFF_PREFIX + pageId;
    var raw = storageGet('sessionStorage', name);
    if (raw === null) return null;
    storageRemove('sessionStorage', name);
    var data = parseJson(raw);
    if (!data || typeof data.password !== 'string') return null;
    return { password: data.password, remember: data.remember === true };
  }

  function rememberKey(pageId, key, days) {
    var exp = Date.now() + days * DAY_MS;
    var record = { v: 1, key: E.b64encode(key), exp: exp };
    return storageSet('localStorage', KEY_PREFIX + pageId, JSON.stringify(record)) ? exp : 0;
  }

  // A valid, unexpired remembered key {key, exp}, or null (expired/garbled ones are removed).
  function recallKey(pageId) {
    var name = KEY_PREFIX + pageId;
    var raw = storageGet('localStorage', name);
    if (raw === null) return null;
    var rec = parseJson(raw);
    var valid = rec && E.isBase64(rec.key) &&
      typeof rec.exp === 'number' && rec.exp > Date.now();
    var key = valid ? E.b64decode(rec.key) : null;
    if (!key || key.length !== 32) {
      storageRemove('localStorage', name);
      return null;
    }
    return { key: key, exp: rec.exp };
  }

  function forgetKey(pageId) {
    storageRemove('localStorage', KEY_PREFIX + pageId);
  }

  // ---- page --------------------------------------------------------------------------

  function byId(id) {
    return document.getElementById(id);
  }

  function metaContent(name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute('content') || '' : '';
  }

  function formatDate(ms) {
    var d = new Date(ms);
    return d.getDate() + ' ' + MONTHS[d.getMonth()] + ' ' + d.getFullYear();
  }

  function callHook(name, root, info) {
    var page = window.OtmPage;
    if (!page || typeof page[name] !== 'function') return;
    try {
      page[name](root, info);
    } catch (e) {
      if (window.console) console.error(e); // a page script bug must not lock the page
    }
  }

  // «Показать пароль»: long printed codes are easier to type when you can see them.
  function bindShowPassword(toggle, input) {
    if (!toggle) return;
    toggle.addEventListener('change', function () {
      input.type = toggle.checked ? 'text' : 'password';
    });
  }

  function Unlocker(env, pageId, rememberDays) {
    this.env = env;
    this.parts = E.parseEnvelope(env);
    if (!this.parts.salt) throw E.brokenError('kdf'); // a file's envelope cannot open alone
    this.pageId = pageId;
    this.rememberDays = rememberDays;
    this.busy = false;
    this.app = byId('otm-app');
    this.lock = byId('otm-lock');
    this.form = byId('otm-form');
    this.password = byId('otm-password');
    this.remember = byId('otm-remember');
    this.submit = byId('otm-submit');
    this.error = byId('otm-error');
    this.progress = byId('otm-progress');
    this.bar = null;
  }

  Unlocker.prototype.setState = function (state) {
    document.documentElement.setAttribute('data-otm-state', state);
  };

  Unlocker.prototype.showError = function (text) {
    this.error.textContent = text;
  };

  Unlocker.prototype.setBusy = function (busy, text, path) {
    this.busy = busy;
    this.submit.disabled = busy;
    this.password.readOnly = busy;
    this.progress.hidden = !busy;
    if (!busy) return;
    var bar = byId('otm-progress-bar');
    byId('otm-progress-text').textContent = text;
    var counted = path === 'noble' || path === 'wasm';
    byId('otm-progress-pct').textContent = counted ? '0 %' : '';
    // WebCrypto gives no progress: an indeterminate bar (no value attribute).
    if (counted) bar.value = 0;
    else bar.removeAttribute('value');
  };

  Unlocker.prototype.onProgress = function (fraction) {
    var pct = Math.min(100, Math.floor(fraction * 100));
    byId('otm-progress-bar').value = pct;
    byId('otm-progress-pct').textContent = pct + ' %';
  };

  Unlocker.prototype.showForm = function () {
    this.setState('locked');
    this.form.hidden = false;
    byId('otm-remember-row').hidden = !(this.rememberDays > 0);
    this.password.focus();
  };

  // The first KDF path of `paths` that works -> {key, path}; the next one takes over when
  // one refuses (subtle without PBKDF2, no WebAssembly, a CSP that forbids compiling it).
  Unlocker.prototype.deriveOn = function (password, paths) {
    var self = this;
    var path = paths[0];
    if (path !== 'webcrypto') this.setBusy(true, MSG.checking, path);
    var progress = function (f) { self.onProgress(f); };
    return E.deriveKey(password, this.parts.salt, this.env.iter, path, progress).then(
      function (key) { return { key: key, path: path }; },
      function (err) {
        if (paths.length < 2) throw err;
        if (window.console) console.warn('PBKDF2 on ' + path + ' failed, trying ' + paths[1], err);
        return self.deriveOn(password, paths.slice(1));
      }
    );
  };

  Unlocker.prototype.derive = function (password) {
    var fallback = E.hasWasm() ? ['wasm', 'noble'] : ['noble'];
    return this.deriveOn(password, E.hasWebCrypto() ? ['webcrypto'].concat(fallback) : fallback);
  };

  // Opens with a key from kdfPath (webcrypto | wasm | noble | remembered); resolves true, or
  // false after showing why not. AES-GCM runs on WebCrypto when the key came from it (or was
  // remembered where it exists), else on noble.
  Unlocker.prototype.openWith = function (key, kdfPath, rememberUntil) {
    var self = this;
    var subtle = kdfPath === 'webcrypto' || (kdfPath === 'remembered' && E.hasWebCrypto());
    var path = subtle ? 'webcrypto' : 'noble';
    var inflater = E.inflatePath();
    return E.openEnvelope(this.env, key, this.pageId, path, inflater).then(function (html) {
      var paths = { cipher: path, kdf: kdfPath, inflater: inflater };
      self.showContent(html, key, paths, rememberUntil);
      return true;
    }, function (err) {
      self.setBusy(false);
      if (err && err.otmWrongKey) return false;
      self.showError(MSG.broken);
      self.setState('broken');
      if (window.console) console.error(err);
      throw err;
    });
  };

  Unlocker.prototype.unlockWithPassword = function (password, remember) {
    var self = this;
    this.showError('');
    this.setState('unlocking');
    this.setBusy(true, MSG.checking, E.hasWebCrypto() ? 'webcrypto' : 'wasm');
    return this.derive(password).then(function (derived) {
      var until = remember && self.rememberDays > 0 ? -1 : 0; // -1: store after success
      return self.openWith(derived.key, derived.path, until);
    }).then(function (ok) {
      if (!ok) {
        self.setState('locked');
        self.showError(MSG.wrong);
      }
      return ok;
    });
  };

  Unlocker.prototype.unlockWithRemembered = function () {
    var rec = recallKey(this.pageId);
    if (!rec) return Promise.resolve(false);
    var self = this;
    this.setState('unlocking');
    this.setBusy(true, MSG.opening, 'webcrypto');
    return this.openWith(rec.key, 'remembered', rec.exp).then(function (ok) {
      if (!ok) forgetKey(self.pageId); // the page was re-keyed: the old key is useless
      return ok;
    });
  };

  Unlocker.prototype.addBar = function (rememberUntil) {
    var bar = document.createElement('div');
    bar.id = 'otm-bar';
    bar.className = 'otm-bar';
    // A named region: every part of the page sits in a landmark, for screen readers.
    bar.setAttribute('role', 'region');
    bar.setAttribute('aria-label', 'Выход со страницы');
    var text = document.createElement('span');
    text.id = 'otm-bar-text';
    text.textContent = rememberUntil > 0
      ? 'Вход запомнен на этом устройстве до ' + formatDate(rememberUntil) + '.'
      : MSG.opened;
    var button = document.createElement('button');
    button.type = 'button';
    button.id = 'otm-logout';
    button.textContent = 'Выйти';
    var self = this;
    button.addEventListener('click', function () { self.logout(); });
    bar.appendChild(text);
    bar.appendChild(button);
    this.app.parentNode.insertBefore(bar, this.app);
    this.bar = bar;
  };

  // paths = {cipher, kdf, inflater}: which code opened the page, shown on <html> for tests.
  Unlocker.prototype.showContent = function (html, key, paths, rememberUntil) {
    var path = paths.cipher;
    var inflater = paths.inflater;
    var until = rememberUntil === -1 ? rememberKey(this.pageId, key, this.rememberDays) : rememberUntil;
    this.setBusy(false);
    this.password.value = '';
    // The decrypted fragment is the builder's own output; as innerHTML its scripts never run.
    if (this.lock.parentNode) this.lock.parentNode.removeChild(this.lock);
    this.app.innerHTML = html;
    this.addBar(until);
    var root = document.documentElement;
    root.setAttribute('data-crypto-path', path);
    root.setAttribute('data-kdf-path', paths.kdf);
    root.setAttribute('data-inflate-path', inflater);
    this.setState('unlocked');
    // Focus for screen readers, but keep the «Выйти» bar in view on a small screen.
    this.app.focus({ preventScroll: true });
    window.scrollTo(0, 0);
    var self = this;
    opened = { key: key, path: path, inflater: inflater };
    callHook('init', this.app, {
      pageId: this.pageId,
      cryptoPath: path,
      logout: function () { self.logout(); },
    });
    announce('otm:unlocked', { pageId: this.pageId, cryptoPath: path });
  };

  Unlocker.prototype.logout = function () {
    forgetKey(this.pageId);
    announce('otm:locked', { pageId: this.pageId });
    opened = null;
    callHook('destroy', this.app);
    if (this.bar && this.bar.parentNode) this.bar.parentNode.removeChild(this.bar);
    this.bar = null;
    this.app.innerHTML = ''; // drop the decrypted content from the document
    this.app.appendChild(this.lock);
    var root = document.documentElement;
    root.removeAttribute('data-crypto-path');
    root.removeAttribute('data-kdf-path');
    root.removeAttribute('data-inflate-path');
    this.password.value = '';
    this.password.type = 'password';
    this.remember.checked = false;
    if (byId('otm-show')) byId('otm-show').checked = false;
    this.showError('');
    this.showForm();
  };

  Unlocker.prototype.onSubmit = function (event) {
    event.preventDefault();
    if (this.busy) return;
    var password = this.password.value;
    if (!E.normalisePassword(password)) {
      this.showError(MSG.empty);
      this.password.focus();
      return;
    }
    var self = this;
    this.unlockWithPassword(password, this.remember.checked).then(function (ok) {
      if (!ok) {
        self.password.focus();
        self.password.select();
      }
    }, function () { /* already shown */ });
  };

  // Handoff from login.js first, then a remembered key, then the form.
  Unlocker.prototype.start = function () {
    var self = this;
    this.form.addEventListener('submit', function (e) { self.onSubmit(e); });
    bindShowPassword(byId('otm-show'), this.password);
    var handoff = takeHandoff(this.pageId);
    var first = handoff
      ? this.unlockWithPassword(handoff.password, handoff.remember)
      : Promise.resolve(false);
    first.then(function (ok) {
      return ok || self.unlockWithRemembered();
    }).then(function (ok) {
      if (!ok) self.showForm();
    }, function () { /* broken page: message shown, no form */ });
  };

  function start() {
    var pageId = metaContent('otm-page-id');
    var days = parseInt(metaContent('otm-remember-days'), 10);
    var source = byId('otm-envelope');
    var env = source ? parseJson(source.textContent) : null;
    var unlocker;
    try {
      unlocker = new Unlocker(env, pageId, days > 0 ? days : 0);
    } catch (e) {
      document.documentElement.setAttribute('data-otm-state', 'broken');
      var error = byId('otm-error');
      if (error) error.textContent = MSG.broken;
      return;
    }
    unlocker.start();
  }

  window.OtmUnlock = {
    normalisePassword: E.normalisePassword,
    canonicalHeader: E.canonicalHeader,
    associatedData: E.associatedData,
    parseEnvelope: E.parseEnvelope,
    hasWebCrypto: E.hasWebCrypto,
    hasWasm: E.hasWasm,
    inflatePath: E.inflatePath,
    deriveKey: E.deriveKey,
    fileKey: E.fileKey,
    openEnvelope: E.openEnvelope,
    openFile: openFile,
    b64encode: E.b64encode,
    b64decode: E.b64decode,
  };

  // Inline scripts after this one (a page's OtmPage) must be defined before unlocking.
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
