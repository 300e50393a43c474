// A minimal MCP Apps host for the browser tests. It embeds the view (the
// widget template, served from another origin) in a sandboxed iframe and
// speaks the view side of SEP-1865 JSON-RPC over postMessage: it answers
// ui/initialize with a host context, waits for ui/notifications/initialized,
// and lets the test send tool results and context changes.
//
// Query parameters: view=<absolute URL of the template>, theme=light|dark.
(function () {
  "use strict";
  var params = new URLSearchParams(location.search);
  var viewURL = params.get("view");
  var viewOrigin = new URL(viewURL).origin;
  var frame = document.getElementById("view");
  var nextId = 1000;

  var host = window.__host = {
    theme: params.get("theme") || "light",
    received: [],      // every message from the view, in order
    initializeParams: null,
    initialized: false,
    initializedAfterAnswer: false,
    answered: false,
    sizes: [],
    responses: {},     // answers to our requests, by id
    send: function (method, p) {
      frame.contentWindow.postMessage({ jsonrpc: "2.0", method: method, params: p }, viewOrigin);
    },
    request: function (method, p) {
      var id = nextId++;
      frame.contentWindow.postMessage({ jsonrpc: "2.0", id: id, method: method, params: p }, viewOrigin);
      return id;
    },
    toolResult: function (result) {
      host.send("ui/notifications/tool-result", result);
    },
    setContext: function (partial) {
      if (partial.theme) {
        host.theme = partial.theme;
        document.body.className = partial.theme;
      }
      host.send("ui/notifications/host-context-changed", partial);
    }
  };
  document.body.className = host.theme;

  window.addEventListener("message", function (event) {
    if (event.source !== frame.contentWindow || event.origin !== viewOrigin) {
      return;
    }
    var m = event.data;
    host.received.push(m);
    if (!m || m.jsonrpc !== "2.0") {
      return;
    }
    if (m.method === "ui/initialize") {
      host.initializeParams = m.params;
      frame.contentWindow.postMessage({
        jsonrpc: "2.0",
        id: m.id,
        result: {
          protocolVersion: "2026-01-26",
          hostInfo: { name: "tollgate-test-host", version: "1.0.0" },
          hostCapabilities: {},
          hostContext: {
            theme: host.theme,
            displayMode: "inline",
            availableDisplayModes: ["inline"],
            locale: "en-US",
            timeZone: "UTC",
            platform: "web",
            containerDimensions: { maxHeight: 720 }
          }
        }
      }, viewOrigin);
      host.answered = true;
    } else if (m.method === "ui/notifications/initialized") {
      host.initialized = true;
      host.initializedAfterAnswer = host.answered;
    } else if (m.method === "ui/notifications/size-changed") {
      host.sizes.push(m.params);
      if (m.params && m.params.height > 0) {
        frame.style.height = m.params.height + "px";
      }
    } else if (m.method === undefined && m.id !== undefined) {
      host.responses[m.id] = m;
    }
  });

  frame.src = viewURL;
})();
