// Progressive enhancement only: every page works without this script.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var live = document.getElementById("live");

  function announce(text) {
    if (!live) return;
    live.textContent = "";
    window.setTimeout(function () { live.textContent = text; }, 30);
  }

  // Copy buttons: the Clipboard API, falling back to selecting the text.
  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      announce("Copied to the clipboard");
      window.setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {
        selectText(source);
        announce("Selected: press Ctrl+C to copy");
      });
    } else {
      selectText(source);
      announce("Selected: press Ctrl+C to copy");
    }
  });

  // Live field checks: the server's own rules and messages, while the recipient types.
  var form = document.querySelector("form[data-live-validate]");
  if (form) {
    var timers = {};
    var context = function () {
      var out = {};
      ["account_id", "schema"].forEach(function (name) {
        var el = form.elements[name];
        if (el) out[name] = el.value;
      });
      return out;
    };
    var show = function (input, message) {
      var slot = document.getElementById(input.id + "-error");
      if (slot) slot.textContent = message;
      var field = input.closest(".field");
      if (message) {
        input.setAttribute("aria-invalid", "true");
        if (field) field.classList.add("has-error");
      } else {
        input.removeAttribute("aria-invalid");
        if (field) field.classList.remove("has-error");
        // The server's list of problems forgets a field once it is fixed.
        var summary = document.getElementById("form-errors");
        var item = summary && summary.querySelector('a[href="#' + input.id + '"]');
        if (item) item.closest("li").remove();
        if (summary && !summary.querySelector("li")) summary.hidden = true;
      }
    };
    var check = function (input) {
      var name = input.getAttribute("data-validate");
      var optional = name === "base_path" || name === "role_arn" ||
        (name === "secret_access_key" && input.value === "");
      if (optional && input.value === "") { show(input, ""); return; }
      fetch(form.getAttribute("data-live-validate") || "/connect/validate-field", {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
        body: JSON.stringify({field: name, value: input.value, context: context()})
      }).then(function (r) { return r.ok ? r.json() : null; }).then(function (body) {
        if (body && body.field === name) show(input, body.message);
      }).catch(function () { /* the server checks again on submit */ });
    };
    form.querySelectorAll("[data-validate]").forEach(function (input) {
      var name = input.getAttribute("data-validate");
      var later = function () {
        window.clearTimeout(timers[name]);
        timers[name] = window.setTimeout(function () { check(input); }, 350);
      };
      input.addEventListener("input", later);
      input.addEventListener("change", function () { window.clearTimeout(timers[name]); check(input); });
      input.addEventListener("blur", function () { if (input.value !== "") { window.clearTimeout(timers[name]); check(input); } });
    });

    // Show only the fields of the chosen sign-in method.
    var radios = form.querySelectorAll('input[name="auth"]');
    var sync = function () {
      var chosen = form.querySelector('input[name="auth"]:checked');
      form.querySelectorAll(".auth-fields").forEach(function (box) {
        box.hidden = !chosen || box.getAttribute("data-auth") !== chosen.value;
      });
    };
    radios.forEach(function (r) { r.addEventListener("change", sync); });
    sync();
  }

  // The type step: show the choices of the chosen direction (export types, or imports).
  var directionForm = document.querySelector("form[data-direction-form]");
  if (directionForm) {
    var syncDirection = function () {
      var chosen = directionForm.querySelector('input[name="direction"]:checked');
      if (!chosen) return;  // one direction only (none offered, or the connection's own)
      directionForm.querySelectorAll(".direction-fields").forEach(function (box) {
        box.hidden = box.getAttribute("data-direction") !== chosen.value;
      });
    };
    directionForm.querySelectorAll('input[name="direction"]').forEach(function (r) {
      r.addEventListener("change", syncDirection);
    });
    syncDirection();
  }

  // A button that needs a checkbox ticked first (the server checks too).
  document.querySelectorAll("[data-requires]").forEach(function (button) {
    var box = document.getElementById(button.getAttribute("data-requires"));
    if (!box) return;
    var sync = function () { button.disabled = !box.checked; };
    box.addEventListener("change", sync);
    sync();
  });

  // Long-running forms (validation) say they are working and are not sent twice.
  document.querySelectorAll("form[data-busy]").forEach(function (f) {
    f.addEventListener("submit", function () {
      var button = f.querySelector("button[type=submit]");
      if (button) {
        if (button.disabled) return;
        window.setTimeout(function () { button.disabled = true; }, 0);
        button.textContent = f.getAttribute("data-busy");
      }
      announce(f.getAttribute("data-busy"));
    });
  });
})();
