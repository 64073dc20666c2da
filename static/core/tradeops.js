/* TradeOps Observatory: the one place an htmx request's failure is shown (loaded by _base.html).
 *
 * The server answers a failed htmx request with an error fragment (X-TradeOps-Error header: code,
 * message, fix, trace id; apps/core/pages.py) and a signed-out one with HX-Redirect to the sign-in page.
 * htmx swaps neither a 4xx/5xx nor a network failure by itself, so without this an action that failed
 * would show nothing. Here:
 *  - a 4xx/5xx answer is shown at the top of the request's target (the part of the page the control
 *    updates) without replacing it, so the controls stay; the next successful refresh clears it;
 *  - an answer that is not a TradeOps fragment (a proxy's 502...) is shown as its status and trace id;
 *  - no answer at all (server down, network down, timeout) is said in the same place;
 *  - a whole page answered where a part was expected is never nested inside the part.
 * When the target is gone, the page-level region #tradeops-errors (under the header) shows it.
 */
(function () {
  "use strict";

  var ERROR_HEADER = "X-TradeOps-Error";
  var WHOLE_PAGE = /^\s*(<!doctype html|<html[\s>])/i;

  function pageRegion() {
    return document.getElementById("tradeops-errors");
  }

  function placeFor(target) {
    if (target && target !== document.body && document.body.contains(target)) {
      return target;
    }
    return pageRegion() || document.body;
  }

  function show(target, node) {
    var place = placeFor(target);
    var old = place.querySelectorAll(":scope > .tradeops-error");
    for (var i = 0; i < old.length; i++) {
      old[i].remove();
    }
    place.insertAdjacentElement("afterbegin", node);
  }

  function fragmentNode(html) {
    var holder = document.createElement("div");
    holder.innerHTML = html; // our own server's escaped fragment (apps/core/pages.py)
    var node = holder.querySelector(".tradeops-error");
    return node || null;
  }

  // A banner built from text only (never HTML from the answer).
  function banner(status, code, message, fix, trace) {
    var node = document.createElement("div");
    node.className = "banner banner-blocked tradeops-error";
    node.setAttribute("role", "alert");
    node.dataset.errorCode = code;
    node.dataset.status = String(status || "");
    var head = document.createElement("strong");
    head.appendChild(document.createTextNode((status ? status + " " : "")));
    var codeEl = document.createElement("code");
    codeEl.textContent = code;
    head.appendChild(codeEl);
    node.appendChild(head);
    node.appendChild(document.createTextNode(" — " + message));
    node.appendChild(document.createElement("br"));
    var fixEl = document.createElement("span");
    fixEl.className = "fix";
    fixEl.textContent = "Fix: " + fix;
    node.appendChild(fixEl);
    node.appendChild(document.createElement("br"));
    if (trace) {
      node.appendChild(document.createTextNode("Trace "));
      var traceEl = document.createElement("code");
      traceEl.textContent = trace;
      node.appendChild(traceEl);
      node.appendChild(document.createTextNode("."));
    } else {
      node.appendChild(document.createTextNode("No trace id: no answer came from TradeOps."));
    }
    return node;
  }

  function isAction(detail) {
    var verb = (detail.requestConfig && detail.requestConfig.verb) || "get";
    return verb.toLowerCase() !== "get";
  }

  function answeredError(detail) {
    var xhr = detail.xhr;
    if (xhr.getResponseHeader(ERROR_HEADER)) {
      var node = fragmentNode(xhr.responseText || "");
      if (node) {
        return node;
      }
    }
    var what = isAction(detail) ? "The action may not have been done." : "This part of the page is not current.";
    return banner(
      xhr.status,
      "HTTP_" + xhr.status,
      "The server answered " + xhr.status + " " + (xhr.statusText || "") + " without an explanation. " + what,
      "Reload the page to see the current state before trying again.",
      xhr.getResponseHeader("X-Trace-Id")
    );
  }

  function noAnswer(detail, why) {
    if (isAction(detail)) {
      return banner(
        null,
        "SERVER_UNREACHABLE",
        "TradeOps did not answer (" + why + "), so it is not known whether the action was done.",
        "When TradeOps answers again, reload the page and check its state and audit trail before trying again.",
        null
      );
    }
    return banner(
      null,
      "SERVER_UNREACHABLE",
      "TradeOps did not answer (" + why + "), so this part of the page is not current.",
      "Check that TradeOps is running and reachable; reload the page when it is.",
      null
    );
  }

  document.addEventListener("htmx:beforeSwap", function (evt) {
    var detail = evt.detail;
    var xhr = detail.xhr;
    if (xhr.status >= 400) {
      detail.shouldSwap = false;
      detail.isError = false; // shown here; htmx need not log it as well
      show(detail.target, answeredError(detail));
      return;
    }
    var target = detail.target;
    if (detail.shouldSwap && target !== document.body && WHOLE_PAGE.test(detail.serverResponse || "")) {
      detail.shouldSwap = false;
      show(
        target,
        banner(
          xhr.status,
          "UNEXPECTED_PAGE",
          "TradeOps answered with a whole page where only this part was expected, so it is not shown here.",
          "Reload the page.",
          xhr.getResponseHeader("X-Trace-Id")
        )
      );
    }
  });

  // Only reached if something else left isError set: the same display.
  document.addEventListener("htmx:responseError", function (evt) {
    show(evt.detail.target, answeredError(evt.detail));
  });

  document.addEventListener("htmx:sendError", function (evt) {
    show(evt.detail.target, noAnswer(evt.detail, "the server or the network is down"));
  });

  document.addEventListener("htmx:timeout", function (evt) {
    show(evt.detail.target, noAnswer(evt.detail, "the request timed out"));
  });
})();
