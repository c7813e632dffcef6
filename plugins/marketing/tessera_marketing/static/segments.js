// The segment editor's live count (/marketing/segments/...): as the rules change, the same rules
// the form would save are posted to the API's count (POST /api/marketing/segments/preview) and
// the number of matching parties the user sees is shown. A refused rule shows the API's reason.
// Without JavaScript the "Count" button asks the server the same question.
(function () {
  "use strict";
  var form = document.querySelector("form[data-segment-editor]");
  if (!form) {
    return;
  }
  var output = form.querySelector("[data-count]");
  var problem = form.querySelector("[data-count-error]");
  var LIST_OPS = ["in", "not_in", "has_any", "has_none"];
  var timer = null;
  var asked = 0;

  function value(text, op) {
    var v;
    text = text.trim();
    try {
      v = JSON.parse(text);
    } catch (e) {
      v = text;
    }
    if (LIST_OPS.indexOf(op) >= 0 && !Array.isArray(v)) {
      v = String(v).split(",").map(function (p) { return p.trim(); }).filter(function (p) { return p; });
    }
    return v;
  }

  function rules() {
    var json = form.querySelector("[name=rules_json]");
    if (json && json.value.trim()) {
      return JSON.parse(json.value);
    }
    var match = form.querySelector("[name=match]");
    var items = [];
    Array.prototype.forEach.call(form.querySelectorAll("[data-rule-row]"), function (row) {
      var field = row.querySelector("select[name$=-field]").value;
      if (!field) {
        return;
      }
      var op = row.querySelector("select[name$=-op]").value;
      var text = row.querySelector("input[name$=-value]").value;
      var item = { field: field, op: op };
      if (text.trim() || (op !== "empty" && op !== "not_empty")) {
        item.value = value(text, op);
      }
      items.push(item);
    });
    var doc = {};
    doc[match && match.value === "any" ? "any" : "all"] = items;
    return doc;
  }

  function offerOps(row) {
    var field = row.querySelector("select[name$=-field]");
    var op = row.querySelector("select[name$=-op]");
    var chosen = field.options[field.selectedIndex];
    var ops = chosen && chosen.getAttribute("data-ops") ? chosen.getAttribute("data-ops").split(" ") : null;
    Array.prototype.forEach.call(op.options, function (option) {
      option.hidden = !!(ops && option.value && ops.indexOf(option.value) < 0);
    });
    if (ops && op.value && ops.indexOf(op.value) < 0) {
      op.value = ops[0];
    }
    if (ops && !op.value) {
      op.value = ops[0];
    }
  }

  function count() {
    var mine = ++asked;
    var body;
    try {
      body = JSON.stringify({ rules: rules() });
    } catch (e) {
      problem.textContent = e.message;
      return;
    }
    output.setAttribute("aria-busy", "true");
    fetch(form.getAttribute("data-count-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": form.getAttribute("data-csrf") },
      body: body
    }).then(function (response) {
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    }).then(function (answer) {
      if (mine !== asked) {
        return;
      }
      output.removeAttribute("aria-busy");
      if (answer.ok) {
        output.textContent = answer.data.count;
        problem.textContent = "";
      } else {
        output.textContent = "—";
        var errors = answer.data.errors || [];
        problem.textContent = errors.length
          ? errors.map(function (e) { return e.field + ": " + e.message; }).join("; ")
          : answer.data.detail || "";
      }
    });
  }

  function changed(event) {
    var row = event.target.closest("[data-rule-row]");
    if (row && event.target.name && /-field$/.test(event.target.name)) {
      offerOps(row);
    }
    clearTimeout(timer);
    timer = setTimeout(count, 300);
  }

  Array.prototype.forEach.call(form.querySelectorAll("[data-rule-row]"), offerOps);
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
})();
