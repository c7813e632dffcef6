// Telephony on every signed-in page (docs/integrations.md, "Telephony"):
// * incoming-call pop-ups: an EventSource on /api/telephony/stream; each "call" event shows
//   "Call from <party> — open card" with the party's open tasks and what plugins add;
// * click-to-call: a button beside each phone number (card: button.dial; lists: td.dial) asks
//   the PBX to ring the user's extension and then dial the number (POST /api/telephony/calls).
// Everything is built with textContent: nothing the server sends is parsed as HTML.
(function () {
  "use strict";
  var box = document.getElementById("call-popups");
  if (!box) return;
  var text = function (name) { return box.getAttribute("data-text-" + name) || name; };

  function el(tag, content, attrs) {
    var node = document.createElement(tag);
    if (content) node.textContent = content;
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function show(call) {
    var card = el("section", "", { "class": "call-popup", role: "alert" });
    var title = el("h2", call.title || "");
    card.appendChild(title);
    if (call.party && call.party.url && call.party.url.charAt(0) === "/") {
      card.appendChild(el("a", call.open_card || "open card", { href: call.party.url }));
    }
    if (call.tasks && call.tasks.length) {
      card.appendChild(el("div", call.tasks_label || "", { "class": "muted" }));
      var list = el("ul");
      call.tasks.forEach(function (t) {
        var li = el("li");
        li.appendChild(el("a", t.title, { href: "/app/tasks/" + Number(t.id) }));
        list.appendChild(li);
      });
      card.appendChild(list);
    }
    (call.facts || []).forEach(function (f) {
      var row = el("div");
      row.appendChild(el("span", f.label + ": ", { "class": "muted" }));
      if (f.href && f.href.charAt(0) === "/" && f.href.charAt(1) !== "/") row.appendChild(el("a", f.value, { href: f.href }));
      else row.appendChild(el("span", f.value));
      card.appendChild(row);
    });
    var close = el("button", text("close"), { type: "button", "class": "small" });
    close.addEventListener("click", function () { card.remove(); });
    card.appendChild(close);
    box.appendChild(card);
  }

  if (window.EventSource) {
    var source = new EventSource("/api/telephony/stream");
    source.addEventListener("call", function (event) {
      try { show(JSON.parse(event.data)); } catch (e) { /* a malformed event is skipped */ }
    });
  }

  function dial(button, number, party) {
    button.disabled = true;
    var body = { number: number };
    if (party) body.party_id = Number(party);
    fetch("/api/telephony/calls", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": box.getAttribute("data-csrf") || "" },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        var message = r.ok ? text("calling") : text("failed") + (data.errors && data.errors[0] ? ": " + data.errors[0].message : data.detail ? ": " + data.detail : "");
        button.title = message;
        button.textContent = message;
      });
    }).catch(function () { button.textContent = text("failed"); }).then(function () {
      setTimeout(function () { button.disabled = false; button.textContent = text("call"); }, 5000);
    });
  }

  document.querySelectorAll("button.dial").forEach(function (button) {
    button.addEventListener("click", function () { dial(button, button.getAttribute("data-number"), button.getAttribute("data-party")); });
  });
  var onParties = /^\/app\/parties\/?$/.test(window.location.pathname);
  document.querySelectorAll("td.dial").forEach(function (cell) {
    var row = cell.closest("tr");
    var party = onParties && row ? row.getAttribute("data-id") : "";
    cell.textContent.split(";").map(function (s) { return s.trim(); }).filter(Boolean).forEach(function (number) {
      var button = el("button", text("call"), { type: "button", "class": "dial", "aria-label": text("call") + " " + number });
      button.addEventListener("click", function () { dial(button, number, party); });
      cell.appendChild(button);
    });
  });
})();
