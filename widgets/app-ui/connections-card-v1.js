// connections-card-v1.js: the apps connected to the user's account, each
// with a button that revokes its access.
//
// structuredContent (connections.list / connections.card):
//   {"connections": [{"grant_id": "...", "client_id": "...", "client_name": "...",
//     "client_uri": "https://...", "scopes": ["openid", "profile"],
//     "audiences": ["https://.../mcp"], "created_at": "2026-11-23T18:00:00Z",
//     "last_used_at": "2026-11-24T09:00:00Z", "current": false}]}
// Only grant_id and one of client_name / client_id are required.
//
// Actions (from the result's _meta, never names written here): "revoke"
// with {"grant_id"}, then "reload" for the fresh list. A revoke refused for
// missing scopes (connections.revoke is granted at the first disconnect,
// not at linking) shows the step-up state in the row: the permissions in
// words, Reconnect (the same revoke again; the host sees the challenge and
// can authorize again), then Ask for help reconnecting. The card keeps
// {"revoked": {"name": ..., "at": ...}} as its state, so the notice of the
// last revocation survives a redraw and the model (ChatGPT widgetState,
// MCP Apps ui/update-model-context) knows what the user did.
(function () {
  "use strict";

  var W = window.TollgateWidget;
  if (!W) {
    return;
  }

  var TEXT_FIELDS = ["grant_id", "client_id", "client_name", "client_uri", "created_at", "last_used_at"];

  function present(v) {
    return typeof v === "string" && v.trim() !== "";
  }

  function isStringList(v) {
    if (!Array.isArray(v)) {
      return false;
    }
    for (var i = 0; i < v.length; i++) {
      if (typeof v[i] !== "string") {
        return false;
      }
    }
    return true;
  }

  function check(data) {
    var list = data.connections;
    if (list === undefined || list === null) {
      return "";
    }
    if (!Array.isArray(list)) {
      return "The list of connected apps is not a list.";
    }
    for (var i = 0; i < list.length; i++) {
      var c = list[i];
      if (c === null || typeof c !== "object" || Array.isArray(c)) {
        return "Connected app " + (i + 1) + " is malformed.";
      }
      for (var k = 0; k < TEXT_FIELDS.length; k++) {
        var v = c[TEXT_FIELDS[k]];
        if (v !== undefined && v !== null && typeof v !== "string") {
          return "Connected app " + (i + 1) + " has a " + TEXT_FIELDS[k] + " that is not text.";
        }
      }
      if (!present(c.grant_id)) {
        return "Connected app " + (i + 1) + " has no grant id.";
      }
      if (!present(c.client_name) && !present(c.client_id)) {
        return "Connected app " + (i + 1) + " has no name.";
      }
      if ((c.scopes !== undefined && c.scopes !== null && !isStringList(c.scopes)) ||
          (c.audiences !== undefined && c.audiences !== null && !isStringList(c.audiences))) {
        return "Connected app " + (i + 1) + " has scopes or audiences that are not a list of text.";
      }
      if (c.current !== undefined && c.current !== null && typeof c.current !== "boolean") {
        return "Connected app " + (i + 1) + " has a current flag that is not true or false.";
      }
    }
    return "";
  }

  function nameOf(c) {
    return present(c.client_name) ? c.client_name.trim() : c.client_id;
  }

  function render(data, tools) {
    var h = tools.h;
    var list = Array.isArray(data.connections) ? data.connections : [];
    var words = tools.scopeWords;
    var parts = [];

    var state = tools.getState();
    if (state && state.revoked && typeof state.revoked.name === "string") {
      parts.push(h("p", { "class": "tg-notice", role: "status" }, ["Access revoked for " + state.revoked.name + "."]));
    }
    if (!list.length) {
      parts.push(h("p", { "class": "tg-note" }, ["No apps are connected to your account."]));
      return h("div", { "class": "tg-connections-card" }, parts);
    }

    var items = [];
    for (var i = 0; i < list.length; i++) {
      items.push(item(list[i], h, tools, words));
    }
    parts.push(h("ul", { "class": "tg-connections", "aria-label": "Connected apps" }, items));
    return h("div", { "class": "tg-connections-card" }, parts);
  }

  function item(c, h, tools, words) {
    var name = nameOf(c);
    var scopes = Array.isArray(c.scopes) ? c.scopes : [];
    var scopeItems = [];
    for (var i = 0; i < scopes.length; i++) {
      scopeItems.push(h("li", { "class": "tg-connection__scope", title: scopes[i] }, [words(scopes[i])]));
    }
    var meta = [];
    if (present(c.created_at)) {
      meta.push("Connected " + tools.formatTime(c.created_at));
    }
    meta.push(present(c.last_used_at) ? "Last used " + tools.formatTime(c.last_used_at) : "Not used yet");

    var error = h("p", { "class": "tg-inline-error", role: "alert", hidden: "hidden" }, []);
    var actions = h("div", { "class": "tg-actions" }, []);
    var access = h("div", { "class": "tg-connection__access" }, []);
    var li = h("li", { "class": "tg-connection", "data-grant": c.grant_id }, [
      h("div", { "class": "tg-connection__head" }, [
        h("p", { "class": "tg-connection__name" }, [name]),
        c.current === true ? h("span", { "class": "tg-pill tg-pill--ok tg-connection__current" }, ["This app"]) : null
      ]),
      scopeItems.length
        ? h("ul", { "class": "tg-connection__scopes", "aria-label": "What " + name + " can do" }, scopeItems)
        : h("p", { "class": "tg-connection__meta" }, ["No permissions beyond signing in."]),
      h("p", { "class": "tg-connection__meta" }, [meta.join(" \u00b7 ")]),
      actions,
      access,
      error
    ]);

    function fail(text) {
      error.textContent = text;
      error.hidden = false;
    }

    function idle() {
      var buttons = [];
      if (tools.can("revoke")) {
        buttons.push(h("button", { type: "button", "class": "tg-button tg-button--danger tg-revoke", onclick: confirm }, ["Revoke access"]));
      }
      if (present(c.client_uri) && /^https?:\/\//i.test(c.client_uri)) {
        buttons.push(h("button", { type: "button", "class": "tg-button tg-website", onclick: function () {
          tools.openLink(c.client_uri).catch(function (e) { fail(e.message); });
        } }, ["Visit website"]));
      }
      actions.replaceChildren.apply(actions, buttons);
    }

    function confirm() {
      error.hidden = true;
      var warning = c.current === true
        ? "Revoke access for " + name + "? This is the app you are using now: it stops working until you connect it again."
        : "Revoke access for " + name + "? It stops working until you connect it again.";
      actions.replaceChildren(
        h("p", { "class": "tg-connection__confirm", role: "status" }, [warning]),
        h("button", { type: "button", "class": "tg-button tg-button--danger tg-button--primary tg-revoke-confirm", onclick: revoke }, ["Revoke"]),
        h("button", { type: "button", "class": "tg-button tg-revoke-cancel", onclick: function () {
          idle();
          actions.querySelector(".tg-revoke").focus();
        } }, ["Cancel"])
      );
      actions.querySelector(".tg-revoke-confirm").focus();
    }

    function revoke() {
      var buttons = actions.querySelectorAll("button");
      for (var i = 0; i < buttons.length; i++) {
        buttons[i].disabled = true;
      }
      tools.callTool("revoke", { grant_id: c.grant_id }).then(function (res) {
        var missing = tools.missingScopes(res);
        if (missing) {
          stepUp(missing);
          return;
        }
        return revoked(res);
      }).catch(function (e) {
        idle();
        fail(e.message);
      });
    }

    // stepUp: the user's authorization lacks the revoke scope. Reconnect
    // repeats the revoke the user confirmed; the host sees the step-up
    // challenge in the result and can run the authorization again.
    function stepUp(missing) {
      var words = [];
      var items = [];
      for (var i = 0; i < missing.length; i++) {
        words.push(missing[i].text);
        items.push(h("li", { "class": "tg-stepup__scope", title: missing[i].scope }, [missing[i].text]));
      }
      var status = h("p", { "class": "tg-stepup__status", role: "status" }, []);
      var help = h("button", { type: "button", "class": "tg-button tg-stepup__help", hidden: "hidden" }, ["Ask for help reconnecting"]);
      var reconnect = h("button", { type: "button", "class": "tg-button tg-button--primary tg-stepup__reconnect" }, ["Reconnect"]);
      var cancel = h("button", { type: "button", "class": "tg-button tg-stepup__cancel" }, ["Cancel"]);
      function close() {
        access.replaceChildren();
        idle();
      }
      reconnect.addEventListener("click", function () {
        reconnect.disabled = true;
        status.textContent = "Checking access\u2026";
        tools.callTool("revoke", { grant_id: c.grant_id }).then(function (res) {
          if (tools.missingScopes(res)) {
            reconnect.disabled = false;
            status.textContent = "Access is still missing. Approve the new permissions when asked, or reconnect the app in its settings, then try again.";
            help.hidden = false;
            return;
          }
          close();
          return revoked(res).catch(function (e) {
            idle();
            fail(e.message);
          });
        }, function (e) {
          reconnect.disabled = false;
          status.textContent = e.message;
          help.hidden = false;
        });
      });
      help.addEventListener("click", function () {
        help.disabled = true;
        tools.followUp("Help me reconnect this app so that it can use: " + words.join("; ") + ".").then(function () {
          status.textContent = "Asked the assistant for help.";
        }, function (e) {
          help.disabled = false;
          status.textContent = e.message;
        });
      });
      cancel.addEventListener("click", function () {
        close();
        actions.querySelector(".tg-revoke").focus();
      });
      actions.replaceChildren();
      var title = "tg-stepup-title-" + c.grant_id.replace(/[^A-Za-z0-9_-]/g, "_");
      access.replaceChildren(h("div", { "class": "tg-stepup", role: "region", "aria-labelledby": title }, [
        h("p", { "class": "tg-stepup__title", id: title }, ["More access needed"]),
        h("p", { "class": "tg-stepup__lead" }, [items.length
          ? "To revoke access for " + name + ", this app needs your permission for:"
          : "To revoke access for " + name + ", this app needs more permissions."]),
        items.length ? h("ul", { "class": "tg-stepup__scopes" }, items) : null,
        h("div", { "class": "tg-actions" }, [reconnect, help, cancel]),
        status
      ]));
      reconnect.focus();
    }

    // revoked takes the revoke tool's answer: a failure throws its text; a
    // success is noted in the card state and the list drawn again.
    function revoked(res) {
      return Promise.resolve().then(function () {
        if (res.isError) {
          throw new Error(res.text || "The app's access could not be revoked.");
        }
        tools.setState({ revoked: { name: name, grant_id: c.grant_id, at: new Date().toISOString() } });
        if (c.current === true) {
          // The host's own access is gone, so it cannot ask for the list.
          tools.update({ connections: tools.lastData().connections.filter(function (x) { return x.grant_id !== c.grant_id; }) });
          return;
        }
        // The list is the server's answer, not a local edit.
        return tools.callTool("reload", {}).then(function (list) {
          if (list.isError) {
            throw new Error("Access was revoked, but the list could not be refreshed: " + (list.text || "the tool failed."));
          }
          tools.update(list.structuredContent);
        });
      });
    }

    idle();
    return li;
  }

  W.mount({ name: "connections-card-v1", check: check, render: render });
})();
