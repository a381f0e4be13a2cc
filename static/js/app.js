/* mailops dashboard behaviour. No inline scripts anywhere: the CSP allows only files from 'self'. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  /* Polling. Elements with data-poll="<seconds>" and hx-trigger="poll" refresh themselves, like
     healthchecks' per-cell partials. A hidden tab polls nothing; showing it refreshes at once. */
  var POLLED_AT = "mailopsPolledAt";

  function poll(el) {
    el[POLLED_AT] = Date.now();
    if (window.htmx) { window.htmx.trigger(el, "poll"); }
  }

  function tick() {
    if (document.visibilityState !== "visible") { return; }
    var now = Date.now();
    document.querySelectorAll("[data-poll]").forEach(function (el) {
      var every = parseFloat(el.getAttribute("data-poll")) * 1000;
      if (!(every > 0)) { return; }
      if (el[POLLED_AT] === undefined) { el[POLLED_AT] = now; return; } /* fresh from the server */
      if (now - el[POLLED_AT] >= every) { poll(el); }
    });
  }

  setInterval(tick, 500);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      document.querySelectorAll("[data-poll]").forEach(poll);
    }
  });

  /* Navigation toggle on narrow screens. */
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-nav-toggle]");
    if (toggle) {
      var nav = document.getElementById(toggle.getAttribute("aria-controls"));
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      if (nav) { nav.classList.toggle("is-open", open); }
      return;
    }
    var dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) {
      var target = document.querySelector(dismiss.getAttribute("data-dismiss"));
      if (target) { event.preventDefault(); target.innerHTML = ""; }
      return;
    }
    var tab = event.target.closest("[data-tabs] [role=tab]");
    if (tab) { selectTab(tab); }
  });

  /* Language switcher: submit as soon as a language is picked. */
  document.addEventListener("change", function (event) {
    if (event.target.matches("select[data-autosubmit]")) { event.target.form.submit(); }
  });

  /* Tabs (the preview's HTML / text parts), with arrow keys as the ARIA pattern expects. */
  function selectTab(tab) {
    var list = tab.closest("[role=tablist]");
    list.querySelectorAll("[role=tab]").forEach(function (other) {
      var selected = other === tab;
      other.setAttribute("aria-selected", selected ? "true" : "false");
      other.tabIndex = selected ? 0 : -1;
      var panel = document.getElementById(other.getAttribute("aria-controls"));
      if (panel) { panel.hidden = !selected; }
    });
    tab.focus();
  }

  document.addEventListener("keydown", function (event) {
    var tab = event.target.closest && event.target.closest("[data-tabs] [role=tab]");
    if (!tab || (event.key !== "ArrowRight" && event.key !== "ArrowLeft")) { return; }
    var tabs = Array.prototype.slice.call(tab.closest("[role=tablist]").querySelectorAll("[role=tab]"));
    var next = tabs[(tabs.indexOf(tab) + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    selectTab(next);
    event.preventDefault();
  });

  /* A panel that appears after an action (the confirmation step) takes the focus, so keyboard
     and screen-reader users land on it and sighted users see it. */
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.hasAttribute && target.hasAttribute("data-focus-on-swap") && target.innerHTML.trim()) {
      target.focus({ preventScroll: true });
      target.scrollIntoView({ behavior: "smooth", block: "start" });
    }
  });
})();
