// profile-summary-card-v1.js: draws the signed-in user's profile.
//
// structuredContent (OpenID Connect claim names):
//   {"sub": "...", "name": "...", "given_name": "...", "family_name": "...",
//    "preferred_username": "...", "email": "...", "email_verified": true}
(function () {
  "use strict";

  var W = window.TollgateWidget;
  if (!W) {
    return;
  }

  var TEXT_FIELDS = ["sub", "name", "given_name", "family_name", "preferred_username", "email"];

  function present(v) {
    return typeof v === "string" && v.trim() !== "";
  }

  function check(data) {
    for (var i = 0; i < TEXT_FIELDS.length; i++) {
      var v = data[TEXT_FIELDS[i]];
      if (v !== undefined && v !== null && typeof v !== "string") {
        return "The profile's " + TEXT_FIELDS[i] + " is not text.";
      }
    }
    if (data.email_verified !== undefined && data.email_verified !== null && typeof data.email_verified !== "boolean") {
      return "The profile's email_verified is not true or false.";
    }
    if (!present(data.sub)) {
      return "The profile has no subject (sub).";
    }
    return "";
  }

  function displayName(data) {
    if (present(data.name)) {
      return data.name.trim();
    }
    var joined = [data.given_name, data.family_name].filter(present).join(" ").trim();
    if (joined) {
      return joined;
    }
    if (present(data.preferred_username)) {
      return data.preferred_username.trim();
    }
    if (present(data.email)) {
      return data.email.trim();
    }
    return "Unnamed user";
  }

  function initials(name) {
    var words = name.split(/\s+/).filter(Boolean);
    var out = "";
    for (var i = 0; i < words.length && out.length < 2; i++) {
      var first = Array.from(words[i])[0];
      if (first && /[\p{L}\p{N}]/u.test(first)) {
        out += first.toUpperCase();
      }
    }
    return out || "?";
  }

  function render(data, tools) {
    var h = tools.h;
    var name = displayName(data);

    var identity = h("div", { "class": "tg-identity" }, [
      h("span", { "class": "tg-avatar", "aria-hidden": "true" }, [initials(name)]),
      h("div", { "class": "tg-identity__text" }, [
        h("p", { "class": "tg-identity__name tg-name" }, [name]),
        present(data.preferred_username)
          ? h("p", { "class": "tg-identity__handle tg-handle", title: data.preferred_username.trim() }, ["@" + data.preferred_username.trim()])
          : null
      ])
    ]);

    var fields = [];
    if (present(data.email)) {
      var badge = null;
      if (data.email_verified === true) {
        badge = h("span", { "class": "tg-pill tg-pill--ok tg-verified" }, ["Verified"]);
      } else if (data.email_verified === false) {
        badge = h("span", { "class": "tg-pill tg-pill--warn tg-verified" }, ["Not verified"]);
      }
      fields.push(h("div", null, [
        h("dt", null, ["Email"]),
        h("dd", null, [h("span", { "class": "tg-email" }, [h("span", { "class": "tg-email__address" }, [data.email]), badge])])
      ]));
    }
    if (present(data.preferred_username)) {
      fields.push(h("div", null, [h("dt", null, ["Username"]), h("dd", { "class": "tg-username" }, [data.preferred_username])]));
    }
    fields.push(h("div", null, [h("dt", null, ["Subject"]), h("dd", { "class": "tg-sub tg-mono" }, [data.sub])]));

    return h("div", { "class": "tg-profile" }, [
      identity,
      h("dl", { "class": "tg-fields", "aria-label": "Profile details" }, fields)
    ]);
  }

  W.mount({ name: "profile-summary-card-v1", check: check, render: render });
})();
