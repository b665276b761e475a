/* otmetka save.js: «Сохранить для работы без интернета», the page as it was served.
 *
 * Shipped code: ES2017, no external requests. Inlined in the shell of a journal page right
 * before page.js (site_builder/build.py), which calls OtmSave.offer(root) for each
 * decrypted page and OtmSave.keep(envelope) when it swaps in a newer one.
 * Why: Chrome's «Скачать» saves what is on the screen, i.e. the decrypted journal. So this
 *   script copies the document as served, before unlock.js touches it, and offer(root) adds
 *   to the page header (header.pg) div.otm-offline: button [data-otm-save=offline] which
 *   downloads that copy (the envelope still encrypted; it opens from a file with the same
 *   password), and a sentence saying why. The box is hidden on paper.
 * offer(root) returns a function that takes its print listeners away (page.js calls it on
 *   «Выйти»), or null when there is nothing to offer: no header, or a copy of the document
 *   that was not made while it was parsed (a script run after the page was loaded).
 * keep(envelopeText) puts a newer envelope (the page after consent) into the copy, so the
 *   file saved afterwards opens the page now on the screen.
 * saveBlob(blob, name) hands a Blob to the browser as a download (static/download.js too).
 */
(function () {
  'use strict';

  // Copied while the parser stands at this script: unlock.js starts on DOMContentLoaded,
  // so nothing is decrypted or changed yet. The scripts after this one are not parsed yet;
  // their copies are added once they are.
  var served = document.documentElement.cloneNode(true);
  var scripts = document.getElementsByTagName('script');
  var thisScript = document.currentScript || scripts[scripts.length - 1];

  function copyLaterScripts() {
    var body = served.querySelector('body');
    for (var n = thisScript && thisScript.nextSibling; n && body; n = n.nextSibling) {
      body.appendChild(n.cloneNode(true));
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', copyLaterScripts);
  else served = null; // run after the page was parsed (not by the shell): nothing to save

  function servedFileName() {
    var name = (document.title || 'Дневник').replace(/[\\/:*?"<>|]+/g, ' ').trim();
    return (name || 'Дневник') + '.html';
  }

  function saveBlob(blob, name) {
    var url = URL.createObjectURL(blob);
    var a = document.createElement('a');
    a.href = url;
    a.download = name;
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    document.body.removeChild(a);
    setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
  }

  function saveServed() {
    var html = '<!DOCTYPE html>\n' + served.outerHTML + '\n';
    saveBlob(new Blob([html], { type: 'text/html;charset=utf-8' }), servedFileName());
  }

  function offer(root) {
    var header = root.querySelector('header.pg');
    if (!header || !served) return null;
    var box = document.createElement('div');
    box.className = 'otm-offline';
    var button = document.createElement('button');
    button.type = 'button';
    button.className = 'act-go act-quiet';
    button.setAttribute('data-otm-save', 'offline');
    button.textContent = 'Сохранить для работы без интернета';
    button.addEventListener('click', saveServed);
    var why = document.createElement('p');
    why.className = 'pg-meta';
    why.textContent = 'Файл откроется без интернета тем же паролем, а дневник в нём ' +
      'останется зашифрованным, в отличие от «Скачать» в меню браузера.';
    box.appendChild(button);
    box.appendChild(why);
    header.appendChild(box);
    // Not on paper: a button is no use there.
    var onPrint = function () { box.hidden = true; };
    var afterPrint = function () { box.hidden = false; };
    window.addEventListener('beforeprint', onPrint);
    window.addEventListener('afterprint', afterPrint);
    return function () {
      window.removeEventListener('beforeprint', onPrint);
      window.removeEventListener('afterprint', afterPrint);
    };
  }

  function keep(envelopeText) {
    var copy = served && served.querySelector('#otm-envelope');
    if (copy) copy.textContent = envelopeText;
  }

  window.OtmSave = { offer: offer, keep: keep, saveBlob: saveBlob };
})();
