/* otmetka page.js: the acts of a decrypted page (acknowledgement, consent, breach report).
 *
 * Shipped code: ES2017, no external requests except the school's API, must run on old
 * Android browsers. Inlined in the shell after unlock.js (site_builder/build.py), which
 * calls OtmPage.init(root, info) once the decrypted fragment is in place and
 * OtmPage.destroy(root) on «Выйти».
 *
 * DOM contract (site_builder/templates/_acts.html.j2):
 *   a script element, type "application/json", id "otm-page-data" inside root:
 *     {v, api, token, role, page_version, shown, guardian_id?, children?, consent?,
 *      consent_version?} (the builder writes it; it is inert, never run);
 *   buttons [data-otm-act=acknowledgement|granted|refused|withdrawn|breach];
 *   checkboxes [data-otm-confirm=<act>] that enable the button of the same act;
 *   textarea [data-otm-note=breach]; status lines [data-otm-status=acknowledgement|consent|
 *   breach] (data-state = pending | sending | sent | rejected); [data-otm-queue] line.
 * Storage (localStorage, per page id): "otm:queue:<id>" = acts not confirmed yet, each
 *   {event_id, kind, body} (never the token: it is added when sending); "otm:done:<id>" =
 *   what the server confirmed, for «отправлено» after a reload.
 * Sending: POST <api><path> as JSON, one act at a time, in order. 2xx: confirmed. A JSON
 *   error from the API (4xx but 408/429): refused, shown, dropped. Anything else (offline,
 *   timeout, 5xx, 429, a server that is not ours): kept and sent again with the same
 *   event_id on load, when the browser comes online and every 30 seconds.
 * Saving: the button «Сохранить для работы без интернета» comes from static/save.js
 *   (window.OtmSave), inlined before this script: offered on init, taken away on destroy.
 * The week at a glance (templates/_glance.html.j2): items [data-otm-day=YYYY-MM-DD] newer
 *   than the previous day this page was opened on this device get class "is-new", and each
 *   glance's [data-otm-new] line says how many. localStorage "otm:seen:<id>" = {last, prev}.
 * Links: every http(s) link of the page opens in a new tab with rel="noopener", so the
 *   journal's tab never leaves the page (Back never lands on the locked page).
 * After consent: the consent page offers [data-otm-reopen] «Открыть дневник», which fetches
 *   the page's file again (the school rebuilds it on consent), opens it with the key that
 *   unlock.js holds for this tab (OtmUnlock.openFile) and swaps the content in place: no
 *   password again. Acknowledgement: [data-otm-ack-last] time elements are shown in local
 *   time; a sent acknowledgement says which week it was for.
 */
(function () {
  'use strict';

  var QUEUE_PREFIX = 'otm:queue:';
  var DONE_PREFIX = 'otm:done:';
  var KEY_PREFIX = 'otm:key:';
  var SEEN_PREFIX = 'otm:seen:';
  var REOPEN_MS = 5000;
  var REOPEN_TRIES = 36; // three minutes: the server rebuilds at once, a daemon within one
  var RETRY_MS = 30000;
  var TIMEOUT_MS = 15000;
  var PATHS = {
    acknowledgement: 'acknowledgements',
    consent: 'consents',
    breach_report: 'breach-reports',
  };
  var MONTHS = ['января', 'февраля', 'марта', 'апреля', 'мая', 'июня', 'июля', 'августа',
    'сентября', 'октября', 'ноября', 'декабря'];
  var WHAT = {
    acknowledgement: 'Подтверждение ознакомления',
    granted: 'Согласие',
    refused: 'Отказ от согласия',
    withdrawn: 'Отзыв согласия',
    breach_report: 'Сообщение об утечке',
  };

  // ---- helpers ------------------------------------------------------------------------

  function load(key, fallback) {
    try {
      var text = window.localStorage.getItem(key);
      return text ? JSON.parse(text) : fallback;
    } catch (e) {
      return fallback; // storage off (private mode): the act lives as long as the tab
    }
  }

  function save(key, value) {
    try {
      window.localStorage.setItem(key, JSON.stringify(value));
    } catch (e) { /* see load() */ }
  }

  function forget(key) {
    try {
      window.localStorage.removeItem(key);
    } catch (e) { /* see load() */ }
  }

  function newEventId() {
    var bytes = new Uint8Array(16);
    var c = window.crypto || window.msCrypto;
    if (c && c.getRandomValues) c.getRandomValues(bytes); // works outside secure contexts
    else for (var i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    var hex = '';
    for (var j = 0; j < bytes.length; j++) hex += (bytes[j] < 16 ? '0' : '') + bytes[j].toString(16);
    return hex;
  }

  function dayMonth(isoDay) {
    var p = String(isoDay || '').split('-');
    return p.length === 3 ? parseInt(p[2], 10) + ' ' + MONTHS[parseInt(p[1], 10) - 1] : '';
  }

  function localDay(d) {
    var m = d.getMonth() + 1;
    var day = d.getDate();
    return d.getFullYear() + '-' + (m < 10 ? '0' : '') + m + '-' + (day < 10 ? '0' : '') + day;
  }

  // The page's own file, fresh: after consent the school has rebuilt it.
  function fetchPage(done) {
    var xhr = new XMLHttpRequest();
    try {
      xhr.open('GET', location.href.split('#')[0], true);
      xhr.setRequestHeader('Cache-Control', 'no-cache');
      xhr.timeout = TIMEOUT_MS;
    } catch (e) {
      done(null);
      return;
    }
    xhr.onload = function () { done(xhr.status >= 200 && xhr.status < 300 ? xhr.responseText : null); };
    xhr.onerror = function () { done(null); };
    xhr.ontimeout = function () { done(null); };
    xhr.send();
  }

  // {env, text} of a page file's envelope, or null.
  function envelopeOf(html) {
    var doc = new DOMParser().parseFromString(html, 'text/html');
    var el = doc.getElementById('otm-envelope');
    if (!el) return null;
    try {
      return { env: JSON.parse(el.textContent), text: el.textContent };
    } catch (e) {
      return null;
    }
  }

  function dataOf(fragment) {
    var box = document.createElement('template');
    box.innerHTML = fragment; // inert: template content never runs or loads anything
    var el = box.content.querySelector('#otm-page-data');
    try {
      return el ? JSON.parse(el.textContent) : null;
    } catch (e) {
      return null;
    }
  }

  function when(iso) {
    var d = new Date(iso);
    var mm = d.getMinutes();
    return d.getDate() + ' ' + MONTHS[d.getMonth()] + ' ' + d.getFullYear() + ' в ' +
      d.getHours() + ':' + (mm < 10 ? '0' : '') + mm;
  }

  // A page served over http(s) from a site whose address is a loopback one (the default,
  // the demo) posts to the server that served it, so `otmetka serve --port` needs no new
  // build; a page opened from a file keeps the address built into it.
  var LOOPBACK_API = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?\//i;

  function apiBase(api) {
    if (!/^https?:$/.test(location.protocol) || !LOOPBACK_API.test(api)) return api;
    return location.origin + '/api/v1/';
  }

  function post(url, body, done) {
    var xhr = new XMLHttpRequest();
    var finished = false;
    function finish(status, answer) {
      if (finished) return;
      finished = true;
      done(status, answer);
    }
    try {
      xhr.open('POST', url, true);
      xhr.setRequestHeader('Content-Type', 'application/json');
      xhr.timeout = TIMEOUT_MS;
    } catch (e) {
      finish(0, null);
      return;
    }
    xhr.onload = function () {
      var answer = null;
      try {
        answer = JSON.parse(xhr.responseText);
      } catch (e) { /* not our API */ }
      finish(xhr.status, answer);
    };
    xhr.onerror = function () { finish(0, null); };
    xhr.ontimeout = function () { finish(0, null); };
    xhr.send(body);
  }

  // ---- one page -----------------------------------------------------------------------

  function Page(root, info) {
    this.root = root;
    this.info = info;
    this.pageId = info.pageId;
    this.logout = info.logout;
    var source = root.querySelector('#otm-page-data');
    this.data = source ? JSON.parse(source.textContent) : null;
    this.queue = load(QUEUE_PREFIX + this.pageId, []);
    this.done = load(DONE_PREFIX + this.pageId, {});
    this.sending = false;
    this.timer = null;
    var self = this;
    this.onOnline = function () { self.flush(); };
  }

  Page.prototype.start = function () {
    var self = this;
    var buttons = this.root.querySelectorAll('[data-otm-act]');
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener('click', function (e) { self.onAct(e.currentTarget); });
    }
    var checks = this.root.querySelectorAll('[data-otm-confirm]');
    for (var j = 0; j < checks.length; j++) this.bindConfirm(checks[j]);
    window.addEventListener('online', this.onOnline);
    this.timer = window.setInterval(function () {
      if (self.queue.length) self.flush();
    }, RETRY_MS);
    this.offerSave();
    this.markLinks();
    this.markNew();
    this.showAckTimes();
    this.showAll();
    this.flush();
  };

  Page.prototype.markLinks = function () {
    var links = this.root.querySelectorAll('a[href]');
    for (var i = 0; i < links.length; i++) {
      var a = links[i];
      if (!/^https?:\/\//i.test(a.getAttribute('href'))) continue;
      a.target = '_blank';
      var rel = (a.getAttribute('rel') || '').split(/\s+/);
      if (rel.indexOf('noopener') < 0) rel.push('noopener');
      a.setAttribute('rel', rel.join(' ').trim());
    }
  };

  // What is newer than the previous day this page was opened on this device.
  Page.prototype.markNew = function () {
    var today = localDay(new Date());
    var seen = load(SEEN_PREFIX + this.pageId, null);
    if (!seen || typeof seen.last !== 'string') seen = { last: today, prev: null };
    else if (seen.last !== today) seen = { last: today, prev: seen.last };
    save(SEEN_PREFIX + this.pageId, seen);
    if (!seen.prev) return;
    var boxes = this.root.querySelectorAll('.glance');
    for (var i = 0; i < boxes.length; i++) {
      var items = boxes[i].querySelectorAll('[data-otm-day]');
      var count = 0;
      for (var j = 0; j < items.length; j++) {
        if (items[j].getAttribute('data-otm-day') > seen.prev) {
          items[j].className += ' is-new';
          count++;
        }
      }
      var line = boxes[i].querySelector('[data-otm-new]');
      if (!line || !count) continue;
      line.textContent = 'С прошлого посещения (' + dayMonth(seen.prev) + ') новых записей: ' + count + '.';
      line.hidden = false;
    }
  };

  Page.prototype.showAckTimes = function () {
    var times = this.root.querySelectorAll('[data-otm-ack-last] time[datetime]');
    for (var i = 0; i < times.length; i++) {
      var at = new Date(times[i].getAttribute('datetime'));
      if (isNaN(at.getTime())) continue;
      // Paper gives a day only: stored as its midnight at school, shown as that day.
      times[i].textContent = times[i].hasAttribute('data-otm-date-only')
        ? at.getDate() + ' ' + MONTHS[at.getMonth()] + ' ' + at.getFullYear()
        : when(at.toISOString());
    }
  };

  // ---- after consent: the diary in place, with the key this tab already has -------------

  Page.prototype.offerReopen = function () {
    var block = this.root.querySelector('[data-otm-block="consent"]');
    if (!block || this.reopenButton) return;
    var button = document.createElement('button');
    button.type = 'button';
    button.className = 'act-go';
    button.setAttribute('data-otm-reopen', '1');
    button.textContent = 'Открыть дневник';
    var self = this;
    button.addEventListener('click', function () { self.reopen(0); });
    block.appendChild(button);
    this.reopenButton = button;
  };

  Page.prototype.reopen = function (tries) {
    var unlock = window.OtmUnlock;
    if (!this.timer) return; // logged out meanwhile
    if (!unlock || !unlock.openFile || !/^https?:$/.test(location.protocol)) {
      this.setStatus('consent', 'sent', 'Согласие принято. Этот файл — сохранённая копия: ' +
        'откройте дневник по ссылке школы.');
      return;
    }
    this.reopenButton.disabled = true;
    this.setStatus('consent', 'sending', 'Открываем дневник…');
    var self = this;
    fetchPage(function (html) {
      var found = html && envelopeOf(html);
      if (!found) return self.notYet(tries);
      unlock.openFile(found.env, self.pageId).then(function (bytes) {
        var fragment = new TextDecoder('utf-8').decode(bytes);
        var data = dataOf(fragment);
        if (!data || data.consent !== 'granted') return self.notYet(tries);
        self.swap(fragment, found.text);
      }, function () { self.notYet(tries); });
    });
  };

  Page.prototype.notYet = function (tries) {
    if (!this.timer) return;
    var self = this;
    if (tries < REOPEN_TRIES) {
      this.setStatus('consent', 'sending', 'Школа готовит дневник, он откроется сам через ' +
        'несколько секунд…');
      this.reopenTimer = window.setTimeout(function () { self.reopen(tries + 1); }, REOPEN_MS);
      return;
    }
    this.reopenButton.disabled = false;
    this.setStatus('consent', 'sent', 'Согласие принято, но дневник ещё не готов. ' +
      'Нажмите «Открыть дневник» через несколько минут.');
  };

  // The new page replaces the consent page in this tab; the offline copy follows it.
  Page.prototype.swap = function (fragment, envelopeText) {
    if (window.OtmSave) window.OtmSave.keep(envelopeText);
    var root = this.root;
    root.innerHTML = fragment; // the builder's own output, as unlock.js inserts it
    window.OtmPage.init(root, this.info);
    root.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  };

  Page.prototype.offerSave = function () {
    var save = window.OtmSave; // static/save.js, inlined before this script
    this.unoffer = save ? save.offer(this.root) : null;
  };

  Page.prototype.stop = function () {
    window.removeEventListener('online', this.onOnline);
    if (this.unoffer) this.unoffer();
    if (this.timer) window.clearInterval(this.timer);
    if (this.reopenTimer) window.clearTimeout(this.reopenTimer);
    this.timer = null;
  };

  Page.prototype.bindConfirm = function (box) {
    var button = this.root.querySelector('[data-otm-act="' + box.getAttribute('data-otm-confirm') + '"]');
    if (!button) return;
    var sync = function () { button.disabled = !box.checked; };
    box.addEventListener('change', sync);
    sync();
  };

  Page.prototype.statusOf = function (kind) {
    var name = kind === 'breach_report' ? 'breach' : kind;
    return this.root.querySelector('[data-otm-status="' + name + '"]');
  };

  Page.prototype.setStatus = function (kind, state, text) {
    var el = this.statusOf(kind);
    if (!el) return;
    el.setAttribute('data-state', state);
    el.textContent = text;
  };

  // ---- making acts --------------------------------------------------------------------

  Page.prototype.onAct = function (button) {
    var act = button.getAttribute('data-otm-act');
    if (!this.data || !this.data.token) return;
    if (act === 'refused' && button.getAttribute('data-armed') !== '1') {
      button.setAttribute('data-armed', '1'); // a refusal removes the page: ask twice
      button.textContent = 'Нажмите ещё раз, чтобы отказаться';
      return;
    }
    var body = { occurred_at: new Date().toISOString() };
    var kind;
    if (act === 'acknowledgement') {
      kind = 'acknowledgement';
      if (this.acknowledged()) return this.showAll();
      body.page_version = this.data.page_version;
      body.children = this.data.children || [];
      body.shown = this.data.shown;
    } else if (act === 'breach') {
      kind = 'breach_report';
      var note = this.root.querySelector('[data-otm-note="breach"]');
      body.note = note ? note.value.slice(0, 1000) : '';
    } else {
      kind = 'consent';
      body.decision = act;
      body.text_version = this.data.consent_version;
    }
    this.enqueue(kind, body);
  };

  Page.prototype.acknowledged = function () {
    var version = this.data.page_version;
    var sent = this.done.acknowledgement;
    if (sent && sent.page_version === version) return true;
    for (var i = 0; i < this.queue.length; i++) {
      var item = this.queue[i];
      if (item.kind === 'acknowledgement' && item.body.page_version === version) return true;
    }
    return false;
  };

  Page.prototype.enqueue = function (kind, body) {
    body.event_id = newEventId();
    this.queue.push({ event_id: body.event_id, kind: kind, body: body });
    save(QUEUE_PREFIX + this.pageId, this.queue);
    this.showAll();
    this.flush();
  };

  // ---- sending ------------------------------------------------------------------------

  Page.prototype.flush = function () {
    if (this.sending || !this.queue.length || !this.data || !this.data.api) return;
    var item = this.queue[0];
    var payload = {};
    for (var k in item.body) payload[k] = item.body[k];
    payload.token = this.data.token;
    this.sending = true;
    this.setStatus(item.kind, 'sending', 'Отправляется…');
    var self = this;
    post(apiBase(this.data.api) + PATHS[item.kind], JSON.stringify(payload), function (status, answer) {
      self.sending = false;
      self.onAnswer(item, status, answer);
    });
  };

  Page.prototype.onAnswer = function (item, status, answer) {
    if (!this.timer) return; // logged out meanwhile: the act stays queued for next time
    var refused = status >= 400 && status < 500 && status !== 408 && status !== 429 &&
      answer && answer.error;
    if (!(status >= 200 && status < 300) && !refused) {
      this.showAll(); // offline, timeout, busy: keep it, try again later
      return;
    }
    this.queue.shift();
    save(QUEUE_PREFIX + this.pageId, this.queue);
    var record = { event_id: item.event_id, at: new Date().toISOString(), ok: !refused };
    if (refused) record.message = answer.message || answer.error;
    if (item.kind === 'acknowledgement') record.page_version = item.body.page_version;
    if (item.kind === 'consent') record.decision = item.body.decision;
    this.done[item.kind] = record;
    save(DONE_PREFIX + this.pageId, this.done);
    this.showAll();
    if (!refused) this.afterConfirmed(item);
    this.flush();
  };

  // A refusal, a withdrawal or a breach report switches this page off on the server.
  Page.prototype.afterConfirmed = function (item) {
    var off = item.kind === 'breach_report' ||
      (item.kind === 'consent' && item.body.decision !== 'granted');
    if (!off) return;
    forget(KEY_PREFIX + this.pageId);
    forget(QUEUE_PREFIX + this.pageId);
    var notice = document.createElement('p');
    notice.className = 'act-status';
    notice.setAttribute('data-otm-status', item.kind === 'consent' ? 'consent' : 'breach');
    notice.setAttribute('data-state', 'sent');
    notice.textContent = item.kind === 'consent'
      ? 'Отказ принят: электронная страница удалена, сведения об обучении школа будет ' +
        'выдавать на бумаге.'
      : 'Сообщение отправлено: вход по этому логину заблокирован. Новый логин и пароль ' +
        'выдаст школа.';
    this.root.innerHTML = ''; // the data of this page should not stay on the screen
    this.root.appendChild(notice);
  };

  // ---- showing ------------------------------------------------------------------------

  Page.prototype.pendingOf = function (kind) {
    for (var i = 0; i < this.queue.length; i++) if (this.queue[i].kind === kind) return this.queue[i];
    return null;
  };

  Page.prototype.showAll = function () {
    var kinds = ['acknowledgement', 'consent', 'breach_report'];
    for (var i = 0; i < kinds.length; i++) this.showOne(kinds[i]);
    var line = this.root.querySelector('[data-otm-queue]');
    if (line) {
      line.hidden = !this.queue.length;
      line.textContent = this.queue.length
        ? 'Не отправлено: ' + this.queue.length + '. Сохранено на этом устройстве, ожидает ' +
          'связи со школой.'
        : '';
    }
  };

  Page.prototype.showOne = function (kind) {
    var pending = this.pendingOf(kind);
    if (pending) {
      var label = WHAT[kind === 'consent' ? pending.body.decision : kind];
      this.setStatus(kind, 'pending', label +
        ': ожидает связи со школой (сохранено на этом устройстве, отправится само).');
      return;
    }
    var done = this.done[kind];
    if (!done) return;
    if (kind === 'acknowledgement' && done.page_version !== this.data.page_version) return;
    var what = WHAT[kind === 'consent' ? done.decision : kind];
    if (!done.ok) {
      this.setStatus(kind, 'rejected', what + ': не принято школой. ' + done.message);
      return;
    }
    var text = what + ': отправлено ' + when(done.at);
    var shown = this.data.shown;
    if (kind === 'acknowledgement' && shown && shown.week_start) {
      text += ', неделя ' + dayMonth(shown.week_start) + ' — ' + dayMonth(shown.week_end);
    }
    text += '.';
    if (kind === 'consent' && done.decision === 'granted' && this.data.consent !== 'granted') {
      text += ' Нажмите «Открыть дневник»: пароль вводить не нужно.';
      this.offerReopen();
    }
    if (!this.reopenButton || !this.reopenButton.disabled) this.setStatus(kind, 'sent', text);
  };

  // ---- hook for unlock.js -------------------------------------------------------------

  var current = null;

  window.OtmPage = {
    init: function (root) {
      var info = arguments[1] || {};
      if (current) current.stop();
      current = new Page(root, info);
      current.start();
    },
    destroy: function () {
      if (current) current.stop();
      current = null;
    },
    // For tests and the curious: how many acts wait on this device.
    pending: function () { return current ? current.queue.length : 0; },
  };
})();
