// health-status-card-v1.js: draws a capability's health check.
//
// structuredContent:
//   {"service": "capability-core", "version": "v0.1.0",
//    "status": "ok" | "degraded" | "down", "timestamp": "2026-11-23T18:00:00Z",
//    "checks": [{"name": "redis", "status": "ok", "detail": ""}]}
(function () {
  "use strict";

  var W = window.TollgateWidget;
  if (!W) {
    return;
  }

  var LABELS = {
    ok: { text: "Operational", check: "OK", tone: "ok" },
    degraded: { text: "Degraded", check: "Degraded", tone: "warn" },
    down: { text: "Down", check: "Down", tone: "bad" }
  };

  function statusOf(value) {
    return LABELS[value] || { text: "Unknown", check: "Unknown", tone: "neutral" };
  }

  function optionalString(data, key) {
    return data[key] === undefined || data[key] === null || typeof data[key] === "string";
  }

  function check(data) {
    if (typeof data.service !== "string" || data.service === "") {
      return "The health result has no service name.";
    }
    if (typeof data.status !== "string" || data.status === "") {
      return "The health result has no status.";
    }
    if (!optionalString(data, "version") || !optionalString(data, "timestamp")) {
      return "The health result has a version or time that is not text.";
    }
    if (data.checks !== undefined && data.checks !== null) {
      if (!Array.isArray(data.checks)) {
        return "The health result's checks are not a list.";
      }
      for (var i = 0; i < data.checks.length; i++) {
        var c = data.checks[i];
        if (c === null || typeof c !== "object" || typeof c.name !== "string" ||
            typeof c.status !== "string" || !optionalString(c, "detail")) {
          return "Check " + (i + 1) + " of the health result is malformed.";
        }
      }
    }
    return "";
  }

  function render(data, tools) {
    var h = tools.h;
    var status = statusOf(data.status);

    var fields = [
      h("div", null, [h("dt", null, ["Service"]), h("dd", { "class": "tg-service" }, [data.service])])
    ];
    if (data.version) {
      fields.push(h("div", null, [h("dt", null, ["Version"]), h("dd", { "class": "tg-version tg-mono" }, [data.version])]));
    }
    if (data.timestamp) {
      fields.push(h("div", null, [
        h("dt", null, ["Checked"]),
        h("dd", null, [h("time", { "class": "tg-time", datetime: data.timestamp }, [tools.formatTime(data.timestamp)])])
      ]));
    }

    var parts = [
      h("div", { "class": "tg-status" }, [
        h("span", { "class": "tg-pill tg-pill--" + status.tone + " tg-status-label" }, [status.text])
      ]),
      h("dl", { "class": "tg-fields", "aria-label": "Service details" }, fields)
    ];

    var checks = Array.isArray(data.checks) ? data.checks : [];
    if (checks.length) {
      var items = [];
      for (var i = 0; i < checks.length; i++) {
        var c = checks[i];
        var s = statusOf(c.status);
        items.push(h("li", null, [
          h("span", { "class": "tg-check__name" }, [c.name]),
          h("span", { "class": "tg-pill tg-pill--" + s.tone }, [s.check]),
          c.detail ? h("span", { "class": "tg-check__detail" }, [c.detail]) : null
        ]));
      }
      parts.push(h("h2", { "class": "tg-subtitle", id: "tg-checks-title" }, ["Dependencies"]));
      parts.push(h("ul", { "class": "tg-checks", "aria-labelledby": "tg-checks-title" }, items));
    }

    return h("div", { "class": "tg-health" }, parts);
  }

  W.mount({ name: "health-status-card-v1", check: check, render: render });
})();
