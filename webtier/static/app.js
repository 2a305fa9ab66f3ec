// bankwire's page script, from this site (the CSP allows no inline script):
// live updates on signed-in pages (body data-live="on"), and forms that
// submit once. Everything it shows also appears on a reload, so the site
// works without it; it only saves the reload and a double submit.
(function () {
  'use strict';

  var live = document.getElementById('live-region');

  function announce(text) {
    if (!live) { return; }
    live.textContent = '';
    // A fresh text node after clearing makes screen readers read it again.
    window.setTimeout(function () { live.textContent = text; }, 50);
  }

  function flashUpdate(el) {
    el.classList.remove('updated');
    void el.offsetWidth; // restart the animation
    el.classList.add('updated');
  }

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function attr(name, value) {
    return '[' + name + '="' + (window.CSS && CSS.escape ? CSS.escape(String(value)) : String(value)) + '"]';
  }

  function onBalance(e) {
    var d = JSON.parse(e.data);
    var seen = false;
    each(attr('data-balance-for', d.number), function (el) {
      seen = true;
      el.textContent = d.balance;
      flashUpdate(el);
    });
    (d.totals || []).forEach(function (t) {
      each(attr('data-total-for', t.currency), function (el) {
        el.textContent = t.total;
        flashUpdate(el);
      });
    });
    each(attr('data-new-activity-for', d.number), function (el) { el.hidden = false; });
    if (seen) { announce(d.label + ': balance is now ' + d.balance); }
  }

  function appendMessage(list, d) {
    if (list.querySelector(attr('data-message-id', d.id))) { return; }
    var li = document.createElement('li');
    li.className = 'message' + (d.mine ? ' mine' : '');
    li.setAttribute('data-message-id', String(d.id));
    var from = document.createElement('span');
    from.className = 'message-from';
    from.textContent = d.mine ? 'You' : d.from;
    var body = document.createElement('p');
    body.className = 'message-body';
    body.textContent = d.body;
    var time = document.createElement('time');
    time.className = 'message-time';
    time.setAttribute('datetime', d.at);
    time.textContent = d.time;
    li.appendChild(from);
    li.appendChild(body);
    li.appendChild(time);
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
    each('[data-no-messages]', function (el) { el.hidden = true; });
  }

  function onChat(e) {
    var d = JSON.parse(e.data);
    var chat = document.querySelector(attr('data-conversation', d.conversation_id));
    if (chat) {
      var list = chat.querySelector('[data-messages]');
      if (list) { appendMessage(list, d); }
      return; // the list itself is an aria-live region
    }
    if (d.mine) { return; }
    each('[data-unread]', function (el) { el.hidden = false; });
    each(attr('data-unread-for', d.conversation_id), function (el) { el.hidden = false; });
    announce('New message from ' + d.from);
  }

  function connect() {
    if (!window.EventSource) { return null; }
    var es = new EventSource('/events');
    es.addEventListener('open', function () { document.documentElement.setAttribute('data-live', 'connected'); });
    es.addEventListener('error', function () { document.documentElement.setAttribute('data-live', 'reconnecting'); });
    es.addEventListener('balance', onBalance);
    es.addEventListener('chat', onChat);
    return es;
  }

  // A form that creates something (a transfer, a customer, an account, a
  // payee, a chat message) submits once even if clicked twice: a double
  // click would otherwise open two accounts, send a message twice, or show
  // "username taken" for the customer just created. (A transfer would be
  // made once anyway, thanks to its idempotency key.)
  each('form[data-submit-once]', function (form) {
    form.addEventListener('submit', function (e) {
      if (form.getAttribute('data-submitted')) { e.preventDefault(); return; }
      form.setAttribute('data-submitted', '1');
      each('form[data-submit-once] button[type="submit"]', function (b) { b.disabled = true; });
    });
  });

  var es = document.body.getAttribute('data-live') === 'on' ? connect() : null;

  window.addEventListener('pagehide', function () { if (es) { es.close(); es = null; } });
  window.addEventListener('pageshow', function (e) {
    // Restored from the back/forward cache: the page may be stale or the
    // customer signed out since. Ask the server again.
    if (e.persisted) { window.location.reload(); }
  });
}());
