// The hosted payment page (issue 21). It reads its session with the session
// secret, never an API key, through the page routes of intake:
//
//   GET  /pay/{token}/session   the session as the customer may see it
//   POST /pay/{token}/submit    {session_data} → 201 done, 202 with an action
//
// both authorized by the X-Payment-Session-Secret header alone. The secret
// arrives in the link's fragment (/pay/{token}#<secret>), which browsers
// never send to a server; the page moves it to sessionStorage (this tab
// only) and takes it out of the address bar, so a reload or the way back
// from a 3-D Secure challenge still has it and nothing logs it.
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var token = decodeURIComponent((location.pathname.split("/")[2] || ""));
  var secretKey = "payd.pay.secret." + token;
  // flowKey remembers, across the 3-D Secure round trip, that this tab
  // submitted the payment: "submitted" (an answer is awaited) or "action"
  // (the customer went to the challenge). Only then does a final status
  // send the customer on to the merchant; a link opened afresh on a
  // finished session shows a message instead.
  var flowKey = "payd.pay.flow." + token;
  var session = null;
  var pollTimer = 0;
  var pollStarted = 0;

  function store(key, value) {
    try {
      if (value === null) { sessionStorage.removeItem(key); } else { sessionStorage.setItem(key, value); }
    } catch (e) { /* storage off: the secret lives in memory only */ }
  }
  function stored(key) {
    try { return sessionStorage.getItem(key); } catch (e) { return null; }
  }

  var secret = null;
  if (location.hash.length > 1) {
    secret = decodeURIComponent(location.hash.slice(1));
    store(secretKey, secret);
    history.replaceState(null, "", location.pathname + location.search);
  } else {
    secret = stored(secretKey);
  }

  // ---------------------------------------------------------------- view

  function show(id, on) { $(id).hidden = !on; }

  function text(id, s) { $(id).textContent = s == null ? "" : String(s); }

  function amountText(s) {
    if (s.display_amount) { return s.display_amount; }
    return s.amount + " " + s.currency + " (minor units)";
  }

  // shown is an item's amount as the server wrote it for display ("" when
  // it has none), or its minor units from a server that writes none.
  function shown(it, field) {
    return ("display_" + field) in it ? it["display_" + field] : it[field];
  }

  function renderHead(s) {
    text("merchant", s.display_name || "");
    show("merchant", !!s.display_name);
    text("amount", amountText(s));
    text("description", s.description || "");
    show("description", !!s.description);
    document.title = (s.display_name ? s.display_name + ": " : "") + "pay " + amountText(s);
    var items = s.items || [];
    var body = $("items");
    body.textContent = "";
    items.forEach(function (it) {
      var tr = document.createElement("tr");
      [it.name, it.quantity, shown(it, "unit_price"), shown(it, "total_amount")]
        .forEach(function (v, i) {
          var td = document.createElement("td");
          td.textContent = v == null ? "" : String(v);
          if (i > 0) { td.className = "num"; }
          tr.appendChild(td);
        });
      body.appendChild(tr);
    });
    text("items-total", amountText(s));
    show("summary", items.length > 0);
  }

  function message(title, body, link, linkText, flow) {
    stopPolling();
    show("resume", false);
    show("loading", false);
    show("pay-form", false);
    text("status", "");
    text("message-title", title);
    text("message-text", body);
    var a = $("message-link");
    if (link && safeURL(link)) {
      a.href = link;
      a.textContent = linkText || "Return to the merchant";
      a.setAttribute("data-flow", flow || "");
      a.hidden = false;
    } else {
      a.hidden = true;
      a.removeAttribute("href");
    }
    show("message", true);
    $("message-title").focus();
  }

  function status(s) { text("status", s); }

  function formError(s) {
    var el = $("form-error");
    el.textContent = s || "";
    el.hidden = !s;
    if (s) { el.focus(); }
  }

  function busy(on) {
    var f = $("pay-form");
    Array.prototype.forEach.call(f.elements, function (el) { el.disabled = on; });
    f.setAttribute("aria-busy", on ? "true" : "false");
  }

  // ---------------------------------------------------------------- form

  var methodsShown = [];

  function showForm(s, error) {
    stopPolling();
    show("resume", false);
    show("loading", false);
    show("message", false);
    var methods = (s.enabled_methods || []).map(function (m) { return String(m).toLowerCase(); });
    methodsShown = ["card", "ach"].filter(function (m) { return methods.indexOf(m) >= 0; });
    if (methodsShown.length === 0) {
      message("No way to pay here", "This payment offers no payment method this page supports. Please contact the merchant.",
        s.failure_url && withSessionID(s.failure_url, s.id));
      return;
    }
    show("method-choice", methodsShown.length > 1);
    $("method-card").parentNode.hidden = methodsShown.indexOf("card") < 0;
    $("method-ach").parentNode.hidden = methodsShown.indexOf("ach") < 0;
    if (!checked("method") || methodsShown.indexOf(checked("method")) < 0) {
      $("method-" + methodsShown[0]).checked = true;
    }
    if (!checked("card")) { $("card-visa").checked = true; }
    syncMethod();
    $("pay-button").textContent = "Pay " + amountText(s);
    busy(false);
    show("pay-form", true);
    status("");
    formError(error || "");
  }

  function checked(name) {
    var el = document.querySelector('input[name="' + name + '"]:checked');
    return el ? el.value : "";
  }

  function syncMethod() {
    var m = methodsShown.length > 1 ? checked("method") : methodsShown[0];
    show("card-fields", m === "card");
    show("ach-fields", m === "ach");
  }

  // abaValid is the routing number's checksum: 3·(d1+d4+d7) + 7·(d2+d5+d8)
  // + (d3+d6+d9) is a multiple of 10.
  function abaValid(r) {
    if (!/^[0-9]{9}$/.test(r)) { return false; }
    var d = r.split("").map(Number);
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8])) % 10 === 0;
  }

  function fieldError(id, msg) {
    var input = $(id);
    var err = $(id + "-error");
    err.textContent = msg || "";
    err.hidden = !msg;
    if (msg) { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
  }

  // sessionData is what the submit carries for the chosen method, or null
  // after marking the fields to correct.
  function sessionData() {
    var m = methodsShown.length > 1 ? checked("method") : methodsShown[0];
    if (m === "card") {
      return "sandbox:" + (checked("card") || "pm_card_visa");
    }
    var routing = $("ach-routing").value.replace(/\s+/g, "");
    var account = $("ach-account").value.replace(/\s+/g, "");
    var first = null;
    if (!abaValid(routing)) {
      fieldError("ach-routing", /^[0-9]{9}$/.test(routing) ? "This routing number is not valid: check its digits."
        : "Enter the 9-digit routing number.");
      first = first || "ach-routing";
    } else {
      fieldError("ach-routing", "");
    }
    if (!/^[0-9]{4,17}$/.test(account)) {
      fieldError("ach-account", "Enter the account number: 4 to 17 digits.");
      first = first || "ach-account";
    } else {
      fieldError("ach-account", "");
    }
    if (first) {
      $(first).focus();
      return null;
    }
    return "sandbox:ach:" + routing + ":" + account;
  }

  // ---------------------------------------------------------------- server

  function api(method, path, body) {
    var init = { method: method, headers: { "X-Payment-Session-Secret": secret || "", "Accept": "application/json" },
      cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch("/pay/" + encodeURIComponent(token) + path, init).then(function (res) {
      return res.text().then(function (t) {
        var json = null;
        try { json = t ? JSON.parse(t) : null; } catch (e) { json = null; }
        return { status: res.status, body: json };
      });
    });
  }

  function load() {
    return api("GET", "/session").then(function (res) {
      if (res.status === 200 && res.body) {
        session = res.body;
        renderHead(session);
        return session;
      }
      if (res.status === 404 || res.status === 401 || res.status === 403) {
        store(secretKey, null);
        message("This payment link is not valid",
          "Check that you opened the whole link the merchant gave you, or ask the merchant for a new one.");
        return null;
      }
      throw new Error("HTTP " + res.status);
    });
  }

  // ---------------------------------------------------------------- flow

  function safeURL(u) {
    try {
      var p = new URL(u, location.href).protocol;
      return p === "https:" || p === "http:";
    } catch (e) { return false; }
  }

  // withSessionID appends session_id to a merchant URL (?session_id=… or
  // &session_id=…), before any fragment, leaving the rest as it was.
  function withSessionID(u, id) {
    var hash = "";
    var i = u.indexOf("#");
    if (i >= 0) { hash = u.slice(i); u = u.slice(0, i); }
    var sep = u.indexOf("?") < 0 ? "?" : (/[?&]$/.test(u) ? "" : "&");
    return u + sep + "session_id=" + encodeURIComponent(id) + hash;
  }

  function leaveTo(u) {
    stopPolling();
    store(flowKey, null);
    store(secretKey, null);
    if (!safeURL(u)) {
      message("Payment finished", "The merchant gave no address to go back to.");
      return;
    }
    status("Taking you back to the merchant…");
    location.replace(u);
  }

  function lastError(s) {
    var e = s.last_error;
    if (!e) { return ""; }
    var code = typeof e === "string" ? e : (e.code || e.error_code || "");
    var msg = typeof e === "string" ? "" : (e.message || "");
    var words = {
      card_declined: "Your card was declined.",
      insufficient_funds: "Your card was declined: insufficient funds.",
      authentication_failed: "The 3-D Secure check was not completed.",
      action_expired: "The 3-D Secure check took too long."
    };
    return words[code] || msg || "Your payment did not go through.";
  }

  function render(s) {
    var flow = stored(flowKey);
    switch (s.status) {
      case "ACTIVE":
        store(flowKey, null);
        showForm(s);
        return;
      case "PROCESSING":
        if (isChallenge(s.action) && flow !== "action") {
          // a challenge awaits and this tab is not on its way back from it
          if (flow === "submitted") {
            store(flowKey, "action");
            status("Taking you to your bank to confirm the payment…");
            location.assign(challengeURL(s.action));
            return;
          }
          message("Confirm the payment with your bank",
            "Your bank asks you to confirm this payment (3-D Secure).", challengeURL(s.action), "Continue to your bank",
            "action");
          return;
        }
        waitForOutcome(s);
        return;
      case "COMPLETED":
        if (flow) { leaveTo(withSessionID(s.success_url, s.id)); return; }
        message("This payment is complete", "Thank you: it has been paid. There is nothing more to do here.",
          s.success_url && withSessionID(s.success_url, s.id));
        return;
      case "FAILED":
        if (s.retry_allowed && flow !== "action") {
          store(flowKey, null);
          showForm(s, lastError(s) + " You can try again, with another card if need be.");
          return;
        }
        if (flow) { leaveTo(withSessionID(s.failure_url, s.id)); return; }
        message("This payment could not be completed", lastError(s) || "It was not paid.",
          s.failure_url && withSessionID(s.failure_url, s.id));
        return;
      case "EXPIRED":
        store(flowKey, null);
        message("This payment link has expired",
          "Nothing was charged. Go back to " + (s.display_name || "the merchant") + " to start again.",
          s.failure_url && withSessionID(s.failure_url, s.id));
        return;
      case "CANCELED":
        store(flowKey, null);
        message("This payment was canceled",
          "Nothing was charged. Go back to " + (s.display_name || "the merchant") + " to start again.",
          s.failure_url && withSessionID(s.failure_url, s.id));
        return;
      default:
        message("This payment cannot be made here", "Its status is " + s.status + ".");
    }
  }

  function stopPolling() {
    if (pollTimer) { clearTimeout(pollTimer); pollTimer = 0; }
  }

  // waitForOutcome polls the session until it leaves PROCESSING: quickly at
  // first, every 5 s after two minutes. While the bank's challenge still
  // waits (the customer came back without answering it, or the answer is
  // not known yet), a link back to it appears after a few seconds.
  function waitForOutcome(s) {
    show("loading", false);
    show("message", false);
    busy(true); // the form stays in view, if it was, but takes nothing
    status("Processing your payment…");
    if (!pollStarted) { pollStarted = Date.now(); }
    stopPolling();
    var waited = Date.now() - pollStarted;
    var long = waited > 120000;
    if (long) { status("Still processing your payment. You can keep this page open; it updates by itself."); }
    var resume = s && isChallenge(s.action) && waited > 3000;
    if (resume) { $("resume-link").href = challengeURL(s.action); }
    show("resume", !!resume);
    pollTimer = setTimeout(function () {
      pollTimer = 0;
      load().then(function (s) {
        if (!s) { return; }
        if (s.status !== "PROCESSING" || (isChallenge(s.action) && stored(flowKey) !== "action")) { pollStarted = 0; }
        render(s);
      }, function () { waitForOutcome(s); });
    }, long ? 5000 : 700);
  }

  function actionURL(a) {
    if (!a) { return ""; }
    var u = a.url || a.href || (a.redirect && (a.redirect.href || a.redirect.url)) || "";
    return safeURL(u) ? u : "";
  }

  // isChallenge: the action sends the customer somewhere (3-D Secure),
  // rather than asking the page to poll.
  function isChallenge(a) {
    return !!a && (a.type || "redirect") === "redirect" && !!actionURL(a);
  }

  // challengeURL is the 3-D Secure page with return_url set to this page,
  // where the challenge sends the customer back after a button.
  function challengeURL(a) {
    var u = new URL(actionURL(a), location.href);
    if (!u.searchParams.has("return_url")) {
      u.searchParams.set("return_url", location.origin + "/pay/" + encodeURIComponent(token));
    }
    return u.toString();
  }

  function submit(ev) {
    ev.preventDefault();
    if ($("pay-form").getAttribute("aria-busy") === "true") { return; }
    formError("");
    var data = sessionData();
    if (!data) { return; }
    busy(true);
    status("Processing your payment…");
    store(flowKey, "submitted");
    api("POST", "/submit", { session_data: data }).then(function (res) {
      var b = res.body || {};
      if (res.status === 202 && isChallenge(b.action)) {
        store(flowKey, "action");
        status("Taking you to your bank to confirm the payment…");
        location.assign(challengeURL(b.action));
        return;
      }
      if (res.status === 201 || res.status === 202 || res.status === 429) {
        // 429: a submit of this session is already running; wait for it
        waitForOutcome(null);
        return;
      }
      store(flowKey, null);
      var codes = b.error_codes || [];
      if (res.status === 422 && codes.indexOf("session_data_invalid") >= 0) {
        busy(false);
        status("");
        formError("This payment method was not accepted. Check the details and try again.");
        return;
      }
      // expired, completed or otherwise not payable now: show it as it is
      return load().then(function (s) {
        if (!s) { return; }
        render(s);
        if (s.status === "ACTIVE" || (s.status === "FAILED" && s.retry_allowed)) {
          formError("The payment could not be submitted (" + (codes.join(", ") || "HTTP " + res.status) + "). Please try again.");
        }
      });
    }).catch(function () {
      store(flowKey, null);
      busy(false);
      status("");
      formError("We could not reach the payment service. Check your connection and try again.");
    });
  }

  // ---------------------------------------------------------------- start

  $("pay-form").addEventListener("submit", submit);
  $("message-link").addEventListener("click", function () {
    var f = $("message-link").getAttribute("data-flow");
    if (f) { store(flowKey, f); }
  });
  Array.prototype.forEach.call(document.querySelectorAll('input[name="method"]'), function (el) {
    el.addEventListener("change", syncMethod);
  });
  ["ach-routing", "ach-account"].forEach(function (id) {
    $(id).addEventListener("input", function () { if ($(id).getAttribute("aria-invalid")) { fieldError(id, ""); } });
  });

  if (!token || !secret) {
    message("This payment link is incomplete",
      "Open the whole link the merchant gave you (it ends with a # and a code), in this browser tab.");
    return;
  }
  function start() {
    load().then(function (s) { if (s) { render(s); } }, function () {
      message("The payment could not be loaded", "The payment service did not answer. Reload the page to try again.");
    });
  }
  // A page restored from the back-forward cache (Back from the bank's
  // challenge) runs no script from the start: read the session again.
  window.addEventListener("pageshow", function (ev) {
    if (ev.persisted) {
      stopPolling();
      pollStarted = 0;
      start();
    }
  });
  start();
})();
