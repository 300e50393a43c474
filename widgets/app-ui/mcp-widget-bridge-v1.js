// mcp-widget-bridge-v1.js: the one bridge every Tollgate card uses.
//
// It delivers a tool result to the card from either kind of host:
//   - ChatGPT, which exposes `window.openai` (toolOutput, toolResponseMetadata,
//     theme, displayMode, locale) and fires `openai:set_globals` on window
//     when a global arrives late or changes;
//   - an MCP Apps host (SEP-1865), which talks JSON-RPC 2.0 over postMessage:
//     the view sends the `ui/initialize` request, then the
//     `ui/notifications/initialized` notification; the host sends
//     `ui/notifications/tool-result`, `ui/notifications/host-context-changed`
//     and `ui/notifications/tool-cancelled`; the view reports its size with
//     `ui/notifications/size-changed`.
//
// A card script calls TollgateWidget.mount({check, render}) once. The bridge
// owns the card's state (waiting, ready, empty, error), the theme and the
// host handshake; the card only checks and renders structured data. Every
// value from a host is put in the page as text (textContent), never as HTML.
(function () {
  "use strict";

  if (window.TollgateWidget) {
    return;
  }

  var PROTOCOL_VERSION = "2026-01-26";
  // How long the card waits for a result before it says none arrived.
  var WAIT_MS = 5000;
  var MAX_ERROR_TEXT = 400;
  var FAILED = "The tool call failed";

  var root = document.documentElement;
  var card = null;
  var lastData = null; // the last structured result that passed card.check
  var hasResult = false;
  var waitTimer = 0;
  var ctx = { theme: "", displayMode: "inline", locale: "", timeZone: "" };

  // ---- DOM helpers ---------------------------------------------------------

  // h builds an element. Strings in children become text nodes, so data can
  // never turn into markup. props: "class", "text" and plain attributes.
  function h(tag, props, children) {
    var el = document.createElement(tag);
    var key;
    if (props) {
      for (key in props) {
        if (!Object.prototype.hasOwnProperty.call(props, key)) {
          continue;
        }
        var value = props[key];
        if (value === null || value === undefined || value === false) {
          continue;
        }
        if (key === "class") {
          el.className = String(value);
        } else if (key === "text") {
          el.textContent = String(value);
        } else {
          el.setAttribute(key, String(value));
        }
      }
    }
    if (children) {
      for (var i = 0; i < children.length; i++) {
        var child = children[i];
        if (child === null || child === undefined || child === false) {
          continue;
        }
        el.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
      }
    }
    return el;
  }

  function isPlainObject(v) {
    return v !== null && typeof v === "object" && !Array.isArray(v);
  }

  function clip(text, max) {
    text = String(text);
    return text.length > max ? text.slice(0, max - 1) + "\u2026" : text;
  }

  // formatTime turns an RFC 3339 timestamp into a short local string, in the
  // host's locale and time zone when it told us them.
  function formatTime(value) {
    var date = new Date(value);
    if (typeof value !== "string" || isNaN(date.getTime())) {
      return String(value);
    }
    var options = {
      year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", timeZoneName: "short"
    };
    if (ctx.timeZone) {
      options.timeZone = ctx.timeZone;
    }
    try {
      return new Intl.DateTimeFormat(ctx.locale || undefined, options).format(date);
    } catch (e) {
      // An unknown locale or time zone from the host: fall back to UTC.
      return date.toISOString().replace("T", " ").replace(/:\d\d\.\d+Z$/, " UTC");
    }
  }

  // ---- state ---------------------------------------------------------------

  function main() {
    return document.getElementById("tg-card");
  }

  function show(state, content) {
    var m = main();
    var body = document.getElementById("tg-body");
    if (!m || !body) {
      return;
    }
    m.setAttribute("data-state", state);
    m.setAttribute("aria-busy", state === "waiting" ? "true" : "false");
    body.replaceChildren(content);
    reportSize();
  }

  function note(text) {
    return h("p", { "class": "tg-note", role: "status" }, [text]);
  }

  function alertBox(title, detail) {
    return h("div", { "class": "tg-alert", role: "alert" }, [
      h("p", { "class": "tg-alert__title" }, [title]),
      detail ? h("p", { "class": "tg-alert__detail" }, [clip(detail, MAX_ERROR_TEXT)]) : null
    ]);
  }

  // showError shows why there is nothing to draw. title says whose fault it
  // is: the tool's call failed, or its data does not fit the card.
  function showError(detail, title) {
    hasResult = true;
    lastData = null;
    clearTimeout(waitTimer);
    show("error", alertBox(title || "This result could not be shown", detail));
  }

  function showEmpty(text) {
    lastData = null;
    show("empty", note(text));
  }

  function renderData() {
    var node;
    try {
      node = card.render(lastData, { h: h, formatTime: formatTime, locale: ctx.locale });
    } catch (e) {
      showError("The card failed to draw this result.");
      return;
    }
    show("ready", node);
  }

  // deliver takes structured tool data from either bridge.
  function deliver(data) {
    if (!card) {
      return;
    }
    hasResult = true;
    clearTimeout(waitTimer);
    if (data === null || data === undefined || (isPlainObject(data) && Object.keys(data).length === 0)) {
      showEmpty("The tool returned no data to show.");
      return;
    }
    if (!isPlainObject(data)) {
      showError("The tool returned data of an unexpected shape.");
      return;
    }
    var problem = card.check(data);
    if (problem) {
      showError(problem);
      return;
    }
    lastData = data;
    renderData();
  }

  // deliverCallToolResult takes an MCP CallToolResult.
  function deliverCallToolResult(result) {
    if (!isPlainObject(result)) {
      showError("The host sent a tool result of an unexpected shape.");
      return;
    }
    clearTimeout(waitTimer);
    if (result.isError === true) {
      var texts = [];
      if (Array.isArray(result.content)) {
        for (var i = 0; i < result.content.length; i++) {
          var block = result.content[i];
          if (isPlainObject(block) && block.type === "text" && typeof block.text === "string") {
            texts.push(block.text);
          }
        }
      }
      showError(texts.length ? texts.join(" ") : "The tool reported an error.", FAILED);
      return;
    }
    deliver(result.structuredContent);
  }

  // ---- host context ---------------------------------------------------------

  function applyTheme(theme) {
    if (theme === "light" || theme === "dark") {
      ctx.theme = theme;
      root.setAttribute("data-theme", theme);
    } else if (theme !== undefined) {
      // "system" or nothing: follow prefers-color-scheme.
      ctx.theme = "";
      root.removeAttribute("data-theme");
    }
  }

  function applyDisplayMode(mode) {
    if (typeof mode === "string" && /^[a-z-]{1,20}$/.test(mode)) {
      ctx.displayMode = mode;
      root.setAttribute("data-display-mode", mode);
    }
  }

  // applyStyleVariables takes the host's standard CSS variables
  // (hostContext.styles.variables) so the card blends with the host.
  function applyStyleVariables(vars) {
    if (!isPlainObject(vars)) {
      return;
    }
    for (var name in vars) {
      if (!Object.prototype.hasOwnProperty.call(vars, name)) {
        continue;
      }
      var value = vars[name];
      if (/^--[a-z0-9-]{1,64}$/.test(name) && typeof value === "string" && value.length <= 200) {
        root.style.setProperty(name, value);
      }
    }
  }

  // applyContext merges a (partial) context and redraws when the locale or
  // the time zone changed, since they change how times read.
  function applyContext(c) {
    if (!isPlainObject(c)) {
      return;
    }
    var redraw = false;
    if ("theme" in c) {
      applyTheme(c.theme);
    }
    if ("displayMode" in c) {
      applyDisplayMode(c.displayMode);
    }
    if (typeof c.locale === "string" && c.locale !== ctx.locale) {
      ctx.locale = c.locale;
      root.setAttribute("lang", c.locale);
      redraw = true;
    }
    if (typeof c.timeZone === "string" && c.timeZone !== ctx.timeZone) {
      ctx.timeZone = c.timeZone;
      redraw = true;
    }
    if (isPlainObject(c.styles)) {
      applyStyleVariables(c.styles.variables);
    }
    if (redraw && lastData) {
      renderData();
    }
  }

  // ---- size reporting --------------------------------------------------------

  var mcpReady = false;
  var lastWidth = -1;
  var lastHeight = -1;

  function reportSize() {
    var rect = root.getBoundingClientRect();
    var width = Math.ceil(rect.width);
    var height = Math.ceil(rect.height);
    if (width === lastWidth && height === lastHeight) {
      return;
    }
    lastWidth = width;
    lastHeight = height;
    if (mcpReady) {
      notify("ui/notifications/size-changed", { width: width, height: height });
    }
    var openai = window.openai;
    if (openai && typeof openai.notifyIntrinsicHeight === "function") {
      try {
        openai.notifyIntrinsicHeight(height);
      } catch (e) {
        // The host refused; the card still works at its default height.
      }
    }
  }

  // ---- ChatGPT: window.openai ------------------------------------------------

  function readOpenAI(globals) {
    if (!isPlainObject(globals)) {
      return;
    }
    applyContext({ theme: globals.theme, displayMode: globals.displayMode, locale: globals.locale });
    // ChatGPT hands the result's _meta over as toolResponseMetadata; the
    // gateway puts a failed call's message under "tollgate/error".
    var meta = globals.toolResponseMetadata;
    if (isPlainObject(meta) && typeof meta["tollgate/error"] === "string" && meta["tollgate/error"]) {
      showError(meta["tollgate/error"], FAILED);
      return;
    }
    if ("toolOutput" in globals && globals.toolOutput !== null && globals.toolOutput !== undefined) {
      deliver(globals.toolOutput);
    }
  }

  function onSetGlobals(event) {
    var detail = event && event.detail;
    var globals = isPlainObject(detail) && isPlainObject(detail.globals) ? detail.globals : window.openai;
    readOpenAI(globals);
  }

  // ---- MCP Apps: JSON-RPC over postMessage -----------------------------------

  var nextId = 1;
  var pending = {};

  function post(message) {
    window.parent.postMessage(message, "*");
  }

  function notify(method, params) {
    post({ jsonrpc: "2.0", method: method, params: params });
  }

  function request(method, params, onResult) {
    var id = nextId++;
    pending[id] = onResult;
    post({ jsonrpc: "2.0", id: id, method: method, params: params });
  }

  function answer(id, result) {
    post({ jsonrpc: "2.0", id: id, result: result });
  }

  function onHostMessage(event) {
    // Only the frame that embeds us speaks for the host.
    if (event.source !== window.parent) {
      return;
    }
    var m = event.data;
    if (!isPlainObject(m) || m.jsonrpc !== "2.0") {
      return;
    }
    if (typeof m.method !== "string") {
      // A response to one of our requests.
      var done = pending[m.id];
      if (done) {
        delete pending[m.id];
        done(m.error ? null : m.result);
      }
      return;
    }
    var hasId = m.id !== undefined && m.id !== null;
    switch (m.method) {
      case "ui/notifications/tool-result":
        deliverCallToolResult(m.params);
        break;
      case "ui/notifications/tool-cancelled":
        showError(isPlainObject(m.params) && typeof m.params.reason === "string" && m.params.reason
          ? "Reason: " + m.params.reason
          : "", "The tool call was cancelled");
        break;
      case "ui/notifications/host-context-changed":
        applyContext(m.params);
        break;
      case "ui/notifications/tool-input":
      case "ui/notifications/tool-input-partial":
        // The cards draw results only; the arguments add nothing to them.
        break;
      case "ui/resource-teardown":
      case "ping":
        if (hasId) {
          answer(m.id, {});
        }
        break;
      default:
        if (hasId) {
          post({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "Method not found" } });
        }
    }
  }

  function startMCP(name) {
    window.addEventListener("message", onHostMessage);
    request("ui/initialize", {
      appInfo: { name: "tollgate-" + name, version: "1" },
      appCapabilities: { availableDisplayModes: ["inline"] },
      protocolVersion: PROTOCOL_VERSION
    }, function (result) {
      if (!isPlainObject(result)) {
        return; // Not an MCP Apps host after all; the wait timer tells the user.
      }
      applyContext(result.hostContext);
      mcpReady = true;
      notify("ui/notifications/initialized", {});
      lastWidth = -1;
      reportSize();
    });
  }

  // ---- mount ---------------------------------------------------------------

  // mount starts the bridge for the card. spec.name names the card (used in
  // appInfo), spec.check(data) returns "" or a sentence saying why the data
  // cannot be shown, and spec.render(data, tools) returns the card's body.
  function mount(spec) {
    if (card || !spec || typeof spec.check !== "function" || typeof spec.render !== "function") {
      return;
    }
    card = spec;

    if (typeof ResizeObserver === "function") {
      new ResizeObserver(function () { reportSize(); }).observe(root);
    }

    waitTimer = setTimeout(function () {
      if (!hasResult) {
        showEmpty("No result arrived from the host.");
      }
    }, WAIT_MS);

    window.addEventListener("openai:set_globals", onSetGlobals);
    if (isPlainObject(window.openai)) {
      readOpenAI(window.openai);
    } else if (window.parent !== window) {
      startMCP(String(spec.name || "card"));
    }
  }

  window.TollgateWidget = Object.freeze({ mount: mount, h: h, formatTime: formatTime });
})();
