/* otmetka staff.js: the class teacher's and the deputy head's pages, once decrypted.
 *
 * Shipped code: ES2017, no requests at all. Inlined in the shell of every page
 * (site_builder/shell.py), whoever it is for, so no page tells a staff page apart from
 * outside; on a page without the elements below it does nothing.
 *
 * DOM contract (site_builder/templates/_data_time.html.j2, page_deputy.html.j2):
 *   time[data-otm-local][datetime]: a moment in UTC («данные на …»), rewritten in the
 *     reader's own time as «4 декабря 2026, 18:53» (the server does not know the school's
 *     time zone when it renders; the reader's browser does);
 *   a link to "#id" inside the page: a closed <details> holding that id is opened first,
 *     so the link never lands on a folded section.
 * Listens to unlock.js's "otm:unlocked" event on document (the fragment is in place).
 */
(function () {
  'use strict';

  var MONTHS = ['января', 'февраля', 'марта', 'апреля', 'мая', 'июня', 'июля', 'августа',
    'сентября', 'октября', 'ноября', 'декабря'];

  function pad(n) {
    return (n < 10 ? '0' : '') + n;
  }

  function localTimes(root) {
    var times = root.querySelectorAll('time[data-otm-local]');
    for (var i = 0; i < times.length; i++) {
      var moment = new Date(times[i].getAttribute('datetime'));
      if (isNaN(moment.getTime())) continue;
      times[i].textContent = moment.getDate() + ' ' + MONTHS[moment.getMonth()] + ' ' +
        moment.getFullYear() + ', ' + pad(moment.getHours()) + ':' + pad(moment.getMinutes());
    }
  }

  function openAround(id) {
    var node = id ? document.getElementById(id) : null;
    for (; node; node = node.parentElement) {
      if (node.tagName === 'DETAILS') node.open = true;
    }
  }

  function fromHash(hash) {
    try {
      return decodeURIComponent(hash.replace(/^#/, ''));
    } catch (error) {
      return '';
    }
  }

  document.addEventListener('otm:unlocked', function () {
    localTimes(document);
    openAround(fromHash(location.hash));
  });
  document.addEventListener('click', function (event) {
    var link = event.target && event.target.closest ? event.target.closest('a[href^="#"]') : null;
    if (link) openAround(fromHash(link.getAttribute('href')));
  });
  window.addEventListener('hashchange', function () {
    openAround(fromHash(location.hash));
  });
})();
