// An MCP Apps host for the browser tests (SEP-1865, protocol 2026-01-26).
// It embeds the view (the card, served from another origin) in a sandboxed
// iframe and speaks the host side of JSON-RPC over postMessage: it answers
// ui/initialize with host capabilities and a host context (theme, style
// variables, fonts), waits for ui/notifications/initialized, proxies the
// view's tools/call to the real gateway (gateway.js), records ui/message,
// ui/open-link and ui/update-model-context, and lets the test send tool
// input, results and context changes.
//
// Query parameters: view=<absolute URL of the card>, theme=light|dark,
// token=full|weak.
(function () {
  "use strict";
  var params = new URLSearchParams(location.search);
  var viewURL = params.get("view");
  var viewOrigin = new URL(viewURL).origin;
  var frame = document.getElementById("view");
  var nextId = 1000;

  var host = window.__host = {
    theme: params.get("theme") || "light",
    token: params.get("token") || "full",
    reauthorize: false,
    reauthorized: 0,
    fixtures: {},
    received: [],      // every message from the view, in order
    initializeParams: null,
    initialized: false,
    initializedAfterAnswer: false,
    answered: false,
    sizes: [],
    responses: {},     // answers to our requests, by id
    calls: [],         // tools/call sent to the gateway, in order
    messages: [],      // ui/message params
    links: [],         // ui/open-link urls
    contexts: [],      // ui/update-model-context params
    fail: {},          // method -> error message to answer with
    styles: {
      variables: { "--font-sans": "\"Tollgate Test Sans\", serif" },
      css: { fonts: "@font-face { font-family: \"Tollgate Test Sans\"; src: local(\"DejaVu Serif\"), local(\"Liberation Serif\"); }" }
    },
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
    // runTool is the model calling the tool: the host sends the arguments,
    // calls the server and hands the view the result.
    runTool: function (name, args) {
      host.send("ui/notifications/tool-input", { arguments: args || {} });
      return window.__gateway(host, name, args).then(function (r) {
        host.toolResult(r);
        return r;
      });
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

  function answer(id, result) {
    frame.contentWindow.postMessage({ jsonrpc: "2.0", id: id, result: result }, viewOrigin);
  }

  function refuse(id, message) {
    frame.contentWindow.postMessage({ jsonrpc: "2.0", id: id, error: { code: -32000, message: message } }, viewOrigin);
  }

  window.addEventListener("message", function (event) {
    if (event.source !== frame.contentWindow || event.origin !== viewOrigin) {
      return;
    }
    var m = event.data;
    host.received.push(m);
    if (!m || m.jsonrpc !== "2.0") {
      return;
    }
    if (m.method && m.id !== undefined && host.fail[m.method]) {
      refuse(m.id, host.fail[m.method]);
      return;
    }
    switch (m.method) {
      case "ui/initialize":
        host.initializeParams = m.params;
        answer(m.id, {
          protocolVersion: "2026-01-26",
          hostInfo: { name: "tollgate-test-host", version: "1.0.0" },
          hostCapabilities: { openLinks: {}, serverTools: {}, serverResources: {}, logging: {} },
          hostContext: {
            theme: host.theme,
            styles: host.styles,
            displayMode: "inline",
            availableDisplayModes: ["inline"],
            locale: "en-US",
            timeZone: "UTC",
            platform: "web",
            containerDimensions: { maxHeight: 720 }
          }
        });
        host.answered = true;
        break;
      case "ui/notifications/initialized":
        host.initialized = true;
        host.initializedAfterAnswer = host.answered;
        break;
      case "ui/notifications/size-changed":
        host.sizes.push(m.params);
        if (m.params && m.params.height > 0) {
          frame.style.height = m.params.height + "px";
        }
        break;
      case "tools/call":
        window.__gateway(host, m.params.name, m.params.arguments).then(function (r) {
          answer(m.id, r);
        }, function (e) {
          refuse(m.id, e.message);
        });
        break;
      case "ui/message":
        host.messages.push(m.params);
        answer(m.id, {});
        break;
      case "ui/open-link":
        host.links.push(m.params && m.params.url);
        answer(m.id, {});
        break;
      case "ui/update-model-context":
        host.contexts.push(m.params);
        answer(m.id, {});
        break;
      case undefined:
        if (m.id !== undefined) {
          host.responses[m.id] = m;
        }
        break;
      default:
        if (m.id !== undefined) {
          frame.contentWindow.postMessage({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "Method not found" } }, viewOrigin);
        }
    }
  });

  frame.src = viewURL;
})();
