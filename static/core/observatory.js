/* The Observatory's page behaviour (no CDN, no build step). Loaded after htmx by
   templates/core/kill_all_control.html, which the layout includes in its header.

   1. Refreshes keep what the operator opened, typed or selected.
      Every live region (a poll, or the answer to an action) is swapped with idiomorph's `morph`
      swap (static/vendor/idiomorph), so the DOM is updated in place rather than replaced. This
      file tells the morph who wins, in one place, for every page:
        - the server wins for what it knows: state, and the form that was just submitted (its
          answer echoes the posted values when the action was refused, and clears them when it
          was done);
        - the operator wins for what only the browser knows: a <details> they opened stays open
          (the server may open one, never close it), the field that has focus is left alone, and
          a field they edited but did not submit keeps its value — unless the server changed that
          field's own value meanwhile (the trading-state select follows the state when it moves).
      docs/architecture.md ("Refreshes keep what the operator did") says the same.

   2. The proof-of-use popout (#modal) closes on Escape and on a click outside its card. */
(function () {
  "use strict";

  // Forms whose request is in flight: their fields take the server's answer.
  var submitted = new WeakSet();

  function isField(node) {
    return node instanceof HTMLInputElement || node instanceof HTMLSelectElement || node instanceof HTMLTextAreaElement;
  }

  function serverValue(field) {
    // What the server rendered for this field (its default), as opposed to what is in it now.
    if (field instanceof HTMLSelectElement) {
      return Array.prototype.map.call(field.options, function (o) { return o.value + (o.defaultSelected ? "*" : ""); }).join("|");
    }
    if (field instanceof HTMLInputElement && (field.type === "checkbox" || field.type === "radio")) {
      return String(field.defaultChecked);
    }
    return field.defaultValue;
  }

  function edited(field) {
    if (field instanceof HTMLSelectElement) {
      return Array.prototype.some.call(field.options, function (o) { return o.selected !== o.defaultSelected; });
    }
    if (field instanceof HTMLInputElement && (field.type === "checkbox" || field.type === "radio")) {
      return field.checked !== field.defaultChecked;
    }
    if (field instanceof HTMLInputElement && (field.type === "hidden" || field.type === "submit")) {
      return false;
    }
    return field.value !== field.defaultValue;
  }

  function operatorOwns(oldNode, newNode) {
    if (!isField(oldNode) || !isField(newNode)) return false;
    if (oldNode.form && submitted.has(oldNode.form)) return false; // the answer to this form wins
    if (oldNode === document.activeElement) return true; // never change the field being typed in
    return edited(oldNode) && serverValue(oldNode) === serverValue(newNode);
  }

  function configureMorph() {
    if (!window.Idiomorph) return;
    var callbacks = window.Idiomorph.defaults.callbacks;
    callbacks.beforeNodeMorphed = function (oldNode, newNode) {
      return operatorOwns(oldNode, newNode) ? false : true;
    };
    callbacks.beforeAttributeUpdated = function (name, node, kind) {
      // An opened <details> stays open across a refresh; the server may open one, never close it.
      if (name === "open" && kind === "remove" && node instanceof HTMLDetailsElement) return false;
      return true;
    };
  }

  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = evt.detail && evt.detail.elt;
    var form = elt && (elt.tagName === "FORM" ? elt : elt.form || null);
    if (form) submitted.add(form);
  });
  document.addEventListener("htmx:afterSettle", function (evt) {
    var elt = evt.detail && evt.detail.elt;
    var form = elt && (elt.tagName === "FORM" ? elt : elt.form || null);
    if (form) submitted.delete(form);
  });

  // --- the popout ----------------------------------------------------------------------------
  function closeModal() {
    var modal = document.getElementById("modal");
    if (modal && modal.firstElementChild) modal.innerHTML = "";
  }
  document.addEventListener("keydown", function (evt) {
    if (evt.key === "Escape") closeModal();
  });
  document.addEventListener("click", function (evt) {
    var target = evt.target;
    if (!(target instanceof Element)) return;
    if (target.closest("[data-modal-close]")) { closeModal(); return; }
    // The backdrop is the .modal element itself; a click on it (not inside its card) closes.
    if (target.classList.contains("modal") && target.closest("#modal")) closeModal();
  });

  configureMorph();
})();
