// health-status-card-v1.js: tells an end user whether the service works.
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

  // End-user words: the card never shows the service's internal name, its
  // build version or the names of its dependencies (those stay in the
  // structured result, for the model and for operators).
  var LABELS = {
    ok: { text: "Working normally", tone: "ok", summary: "Everything the app needs is responding." },
    degraded: { text: "Partly working", tone: "warn", summary: "Some parts are not responding, so some requests may fail." },
    down: { text: "Not available", tone: "bad", summary: "The service cannot answer requests right now. Try again later." }
  };

  function statusOf(value) {
    return LABELS[value] || { text: "Status unknown", tone: "neutral", summary: "The service reported a status this card does not know." };
  }

  function optionalString(data, key) {
    return data[key] === undefined || data[key] === null || typeof data[key] === "string";
  }

  function check(data) {
    if (typeof data.status !== "string" || data.status === "") {
      return "The health result has no status.";
    }
    if (!optionalString(data, "service") || !optionalString(data, "version") || !optionalString(data, "timestamp")) {
      return "The health result has a name, version or time that is not text.";
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

  function partsLine(checks) {
    var up = 0;
    for (var i = 0; i < checks.length; i++) {
      if (checks[i].status === "ok") {
        up++;
      }
    }
    return up + " of " + checks.length + " responding";
  }

  function render(data, tools) {
    var h = tools.h;
    var status = statusOf(data.status);

    var parts = [
      h("div", { "class": "tg-status" }, [
        h("span", { "class": "tg-pill tg-pill--" + status.tone + " tg-status-label" }, [status.text])
      ]),
      h("p", { "class": "tg-summary" }, [status.summary])
    ];

    var fields = [];
    var checks = Array.isArray(data.checks) ? data.checks : [];
    if (checks.length) {
      fields.push(h("div", null, [h("dt", null, ["Components"]), h("dd", { "class": "tg-parts" }, [partsLine(checks)])]));
    }
    if (data.timestamp) {
      fields.push(h("div", null, [
        h("dt", null, ["Checked"]),
        h("dd", null, [h("time", { "class": "tg-time", datetime: data.timestamp }, [tools.formatTime(data.timestamp)])])
      ]));
    }
    if (fields.length) {
      parts.push(h("dl", { "class": "tg-fields", "aria-label": "Status details" }, fields));
    }
    if (tools.can("reload")) {
      var status2 = h("p", { "class": "tg-inline-error", role: "alert", hidden: "hidden" }, []);
      var again = h("button", { type: "button", "class": "tg-button tg-recheck" }, ["Check again"]);
      again.addEventListener("click", function () {
        again.disabled = true;
        tools.callTool("reload", {}).then(function (res) {
          if (res.isError) {
            throw new Error(res.text || "The check failed.");
          }
          tools.update(res.structuredContent);
        }).catch(function (e) {
          again.disabled = false;
          status2.textContent = e.message;
          status2.hidden = false;
        });
      });
      parts.push(h("div", { "class": "tg-actions" }, [again]), status2);
    }
    return h("div", { "class": "tg-health" }, parts);
  }

  W.mount({ name: "health-status-card-v1", check: check, render: render });
})();
