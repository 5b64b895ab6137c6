// Progressive enhancement for the Fader console; every page works without it.
//  - forms with data-confirm ask in a native <dialog> before posting (kill switch in a
//    protected environment, revoking a token, removing a member);
//  - forms with data-check send themselves to the engine's check while you type and show its
//    messages next to the fields;
//  - forms with data-swap post in place and replace one region (the evaluation result);
//  - buttons with data-copy copy a field's value (a new token's secret).
"use strict";

(function () {
  const dialog = document.getElementById("confirm-dialog");

  function confirmFirst(form, confirmed, opener) {
    const ok = document.getElementById("confirm-dialog-ok");
    const comment = document.getElementById("confirm-dialog-comment");
    document.getElementById("confirm-dialog-message").textContent = form.dataset.confirm;
    ok.textContent = form.dataset.confirmLabel || "Confirm";
    comment.value = "";
    document.getElementById("confirm-dialog-comment-field").hidden = "noComment" in form.dataset;
    dialog.returnValue = "";
    dialog.addEventListener("close", function () {
      if (dialog.returnValue === "confirm") {
        confirmed.value = "yes";
        const reason = form.querySelector('input[name="comment"]');
        if (reason) reason.value = comment.value;
        form.submit();
      } else if (opener) {
        opener.focus();
      }
    }, { once: true });
    dialog.showModal();
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm || !dialog) return;
    const confirmed = form.querySelector('input[name="confirmed"]');
    if (!confirmed || confirmed.value === "yes") return;
    event.preventDefault();
    confirmFirst(form, confirmed, event.submitter);
  });

  // ---------------------------------------------------------------- check as you type
  function showProblems(form, problems) {
    form.querySelectorAll("[data-error-for]").forEach(function (p) {
      p.textContent = "";
      p.hidden = true;
      const field = document.getElementById(p.dataset.errorFor);
      if (field && field.matches("input, select, textarea")) field.removeAttribute("aria-invalid");
    });
    const loose = [];
    problems.forEach(function (problem) {
      const p = problem.field && document.getElementById(problem.field + "-error");
      if (!p) { loose.push(problem.message); return; }
      if (p.textContent) p.appendChild(document.createElement("br"));
      const label = document.createElement("span");
      label.className = "visually-hidden";
      label.textContent = "Error: ";
      p.appendChild(label);
      p.appendChild(document.createTextNode(problem.message));
      p.hidden = false;
      const field = document.getElementById(problem.field);
      if (field && field.matches("input, select, textarea")) field.setAttribute("aria-invalid", "true");
    });
    const status = document.getElementById("check-status");
    if (!status) return;
    if (!problems.length) {
      status.textContent = "✓ Checked as you typed: the engine found no problems.";
    } else {
      const count = problems.length === 1 ? "1 problem" : problems.length + " problems";
      status.textContent = "Checked as you typed: the engine found " + count +
        (loose.length ? ": " + loose.join(" ") : "; see the messages next to the fields.");
    }
  }

  document.querySelectorAll("form[data-check]").forEach(function (form) {
    let timer = 0;
    let sent = 0;
    function check() {
      const ticket = ++sent;
      fetch(form.dataset.check, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      }).then(function (response) {
        return response.ok ? response.json() : null;
      }).then(function (body) {
        if (body && ticket === sent) showProblems(form, body.problems);
      }).catch(function () { /* offline: the Check button still works */ });
    }
    function later() {
      clearTimeout(timer);
      timer = setTimeout(check, 400);
    }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
  });

  // ------------------------------------------------------------------ split weights
  document.querySelectorAll("select[data-split-toggle]").forEach(function (select) {
    const weights = document.getElementById(select.dataset.splitToggle);
    if (!weights) return;
    function sync() { weights.hidden = select.value !== "split"; }
    select.addEventListener("change", sync);
    sync();
  });

  // -------------------------------------------------------------------- swap in place
  document.querySelectorAll("form[data-swap]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const region = document.getElementById(form.dataset.swap);
      fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          const page = new DOMParser().parseFromString(html, "text/html");
          const fresh = page.getElementById(form.dataset.swap);
          if (region && fresh) region.innerHTML = fresh.innerHTML;
          form.querySelectorAll("[data-error-for]").forEach(function (p) {
            const same = page.getElementById(p.id);
            p.innerHTML = same ? same.innerHTML : "";
            p.hidden = !same || same.hidden;
            const field = document.getElementById(p.dataset.errorFor);
            if (field && p.hidden) field.removeAttribute("aria-invalid");
            if (field && !p.hidden) field.setAttribute("aria-invalid", "true");
          });
        })
        .catch(function () { form.submit(); });
    });
  });

  // --------------------------------------------------------------------------- copy
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    if (!navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      const field = document.getElementById(button.dataset.copy);
      const status = document.getElementById("copy-status");
      navigator.clipboard.writeText(field.value).then(function () {
        if (status) status.textContent = "Copied to the clipboard.";
      }, function () {
        field.select();
        if (status) status.textContent = "Could not copy; the secret is selected, copy it yourself.";
      });
    });
  });
})();
