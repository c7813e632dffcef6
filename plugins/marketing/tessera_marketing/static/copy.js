// "Copy" buttons (data-copy="<id of a textarea>"): the embed snippet of a web form to the
// clipboard. Without JavaScript the snippet stays selectable in its box.
(function () {
  "use strict";
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var box = document.getElementById(button.getAttribute("data-copy"));
      if (!box) {
        return;
      }
      box.select();
      if (navigator.clipboard) {
        navigator.clipboard.writeText(box.value);
      } else {
        document.execCommand("copy");
      }
      button.textContent = button.getAttribute("data-copied") || button.textContent;
    });
  });
})();
