/* otmetka download.js: downloads of encrypted files linked from a decrypted page.
 *
 * Shipped code: ES2017, no external requests. Inlined into every page after page.js
 * (site_builder/build.py: a page that carried it only where a file is linked would be told
 * apart); it does not touch window.OtmPage. It saves with OtmSave.saveBlob (static/save.js,
 * inlined before it).
 *
 * DOM contract (made by templates/_class.html.j2 inside the decrypted fragment):
 *   <a href="../f/<file id>.bin" data-otm-file="<file id>" data-otm-filename="name.pdf">
 * The .bin file is envelope v1 JSON sealed with the page's key and the file id as its id.
 * After unlock.js announces "otm:unlocked", a click on such a link fetches the file,
 * decrypts it with OtmUnlock.openFile (the key stays inside unlock.js) and saves the PDF
 * under data-otm-filename. A status line after the link says what is happening; its
 * element is span.otm-file-status, with data-state = loading | done | failed.
 * From file:// the browser refuses to fetch local files: the status line says so.
 */
(function () {
  'use strict';

  var MSG = {
    loading: 'Загружаем и расшифровываем…',
    done: 'Файл сохранён в загрузки.',
    local: 'Файл можно скачать, когда страница открыта с сайта школы, а не из сохранённой копии.',
    failed: 'Не удалось скачать файл. Обновите страницу и попробуйте ещё раз.',
  };

  function statusOf(link) {
    var next = link.nextElementSibling;
    if (next && next.className === 'otm-file-status') return next;
    var status = document.createElement('span');
    status.className = 'otm-file-status';
    status.setAttribute('role', 'status');
    link.parentNode.insertBefore(status, link.nextSibling);
    return status;
  }

  function show(link, state, text) {
    var status = statusOf(link);
    status.setAttribute('data-state', state);
    status.textContent = ' ' + text;
  }

  function fetchEnvelope(url) {
    return fetch(url, { cache: 'no-store', credentials: 'omit' }).then(function (response) {
      if (!response.ok) throw new Error('HTTP ' + response.status);
      return response.json();
    });
  }

  function save(bytes, name) {
    window.OtmSave.saveBlob(new Blob([bytes], { type: 'application/pdf' }), name);
  }

  function download(link) {
    if (link.getAttribute('data-state') === 'loading') return;
    link.setAttribute('data-state', 'loading');
    show(link, 'loading', MSG.loading);
    var id = link.getAttribute('data-otm-file');
    var name = link.getAttribute('data-otm-filename') || id + '.pdf';
    fetchEnvelope(link.href).then(function (envelope) {
      return window.OtmUnlock.openFile(envelope, id);
    }).then(function (bytes) {
      save(bytes, name);
      show(link, 'done', MSG.done);
    }).catch(function (err) {
      show(link, 'failed', location.protocol === 'file:' ? MSG.local : MSG.failed);
      if (window.console) console.error(err);
    }).then(function () {
      link.removeAttribute('data-state');
    });
  }

  function bind() {
    var links = document.querySelectorAll('#otm-app a[data-otm-file]');
    for (var i = 0; i < links.length; i++) {
      links[i].addEventListener('click', function (event) {
        event.preventDefault();
        download(event.currentTarget);
      });
    }
  }

  document.addEventListener('otm:unlocked', bind);
})();
