// Strongroom console: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  // Reveal a secret in place: POST the same form, get back an escaped fragment (never a GET, never in a URL).
  function reveal(form) {
    var slot = form.closest(".reveal-slot");
    var body = new URLSearchParams(new FormData(form));
    var button = form.querySelector("button");
    if (button) { button.disabled = true; }
    fetch(form.action, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      cache: "no-store",
      headers: { "X-Console-Fragment": "1" }
    }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.text();
    }).then(function (html) {
      var template = document.createElement("template");
      template.innerHTML = html;
      var original = slot.innerHTML;
      slot.replaceChildren(template.content);
      var hide = slot.querySelector(".hide-secret");
      if (hide) {
        hide.focus();
        hide.addEventListener("click", function () {
          slot.innerHTML = original;
          var again = slot.querySelector("button");
          if (again) { again.disabled = false; again.focus(); }
        });
      }
    }).catch(function () {
      form.submit();  // fall back to the plain POST, which shows the error page
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) { return; }
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    if (form.classList.contains("reveal")) {
      event.preventDefault();
      reveal(form);
    }
  });

  // A diagnostic's "line L, column C" moves the editor's cursor there.
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLElement) || !target.classList.contains("goto-line")) { return; }
    var area = document.getElementById("definition");
    if (!area) { return; }
    var line = parseInt(target.getAttribute("data-line") || "1", 10);
    var column = parseInt(target.getAttribute("data-column") || "1", 10);
    var lines = area.value.split("\n");
    var offset = 0;
    for (var i = 0; i < Math.min(line - 1, lines.length); i++) { offset += lines[i].length + 1; }
    offset += Math.max(0, column - 1);
    area.focus();
    area.setSelectionRange(offset, offset);
    var lineHeight = parseFloat(window.getComputedStyle(area).lineHeight) || 18;
    area.scrollTop = Math.max(0, (line - 3) * lineHeight);
  });
})();
