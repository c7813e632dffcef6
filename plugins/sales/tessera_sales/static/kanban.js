// Drag and drop for the sales kanban (/sales/kanban). Without JavaScript every card keeps its
// own form (a stage list and a "Move" button); a drop fills in that same form and submits it,
// so the server answers both the same way (a refused move shows the reason on the board).
(function () {
  "use strict";
  var board = document.querySelector("[data-kanban]");
  if (!board) {
    return;
  }
  var dragged = null;
  Array.prototype.forEach.call(board.querySelectorAll("[data-deal]"), function (card) {
    if (!card.querySelector("form[data-move]")) {
      return;
    }
    card.setAttribute("draggable", "true");
    card.addEventListener("dragstart", function (event) {
      dragged = card;
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", card.getAttribute("data-deal"));
      card.classList.add("dragging");
    });
    card.addEventListener("dragend", function () {
      card.classList.remove("dragging");
      dragged = null;
    });
  });
  Array.prototype.forEach.call(board.querySelectorAll("[data-stage]"), function (column) {
    column.addEventListener("dragover", function (event) {
      if (dragged) {
        event.preventDefault();
        column.classList.add("drop-target");
      }
    });
    column.addEventListener("dragleave", function () {
      column.classList.remove("drop-target");
    });
    column.addEventListener("drop", function (event) {
      event.preventDefault();
      column.classList.remove("drop-target");
      if (!dragged || dragged.parentElement.closest("[data-stage]") === column) {
        return;
      }
      var form = dragged.querySelector("form[data-move]");
      var select = form.querySelector("select[name=to]");
      var stage = column.getAttribute("data-stage");
      var known = Array.prototype.some.call(select.options, function (option) {
        return option.value === stage;
      });
      if (!known) {
        // Not a stage this deal may go to: the server says why, in words.
        var option = document.createElement("option");
        option.value = stage;
        option.textContent = column.getAttribute("data-stage-name") || stage;
        select.appendChild(option);
      }
      select.value = stage;
      form.submit();
    });
  });
})();
