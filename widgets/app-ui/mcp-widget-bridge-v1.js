// mcp-widget-bridge-v1.js: the one bridge every Tollgate card uses.
//
// It speaks to either kind of host:
//   - ChatGPT, which injects `window.openai` (OpenAI Apps SDK): globals
//     toolOutput, toolResponseMetadata, widgetState, theme, displayMode,
//     locale, fired again as `openai:set_globals` when they change; methods
//     callTool(name, args), sendFollowUpMessage({prompt}),
//     openExternal({href}), setWidgetState(state), notifyIntrinsicHeight(h);
//   - an MCP Apps host (SEP-1865, protocol 2026-01-26), which talks JSON-RPC
//     2.0 over postMessage: the view sends the `ui/initialize` request, then
//     `ui/notifications/initialized`; the host sends
//     `ui/notifications/tool-result`, `ui/notifications/host-context-changed`
//     and `ui/notifications/tool-cancelled`; the view reports its size with
//     `ui/notifications/size-changed` and asks the host with the `tools/call`,
//     `ui/message`, `ui/open-link` and `ui/update-model-context` requests.
//
// A card script calls TollgateWidget.mount({name, check, render}) once. The
// bridge owns the card's states (waiting, ready, empty, error, step-up), the
// theme and the host handshake; the card checks and renders structured data
// and uses the interactions handed to render (see mount). Every value from a
// host is put in the page as text (textContent), never as HTML.
(function () {
  "use strict";

  if (window.TollgateWidget) {
    return;
  }

  var PROTOCOL_VERSION = "2026-01-26";
  // How long the card waits for a result before it says none arrived.
  var WAIT_MS = 5000;
  // How long an interaction waits for the host's answer. A host may ask the
  // user first (a destructive tool, a link), so this is generous.
  var CALL_MS = 120000;
  var MAX_ERROR_TEXT = 400;
  var MAX_MESSAGE_TEXT = 2000;
  var FAILED = "The tool call failed";
  // _meta keys the gateway fills (widgets.go: MetaError, MetaActions, MetaStepUp).
  var META_ERROR = "tollgate/error";
  var META_ACTIONS = "tollgate/actions";
  var META_STEP_UP = "tollgate/stepUp";
  var META_SCOPES = "tollgate/scopes";

  var root = document.documentElement;
  var card = null;
  var lastData = null; // the last structured result that passed card.check
  var hasResult = false;
  var waitTimer = 0;
  var ctx = { theme: "", displayMode: "inline", locale: "", timeZone: "" };
  var hostKind = ""; // "openai" or "mcp-apps" once known
  var actions = {}; // role -> tool name, from the result's _meta
  var widgetState = null;
  var scopeText = {}; // scope -> what it allows, in the user's words

  // ---- DOM helpers ---------------------------------------------------------

  // h builds an element. Strings in children become text nodes, so data can
  // never turn into markup. props: "class", "text", "on<event>" handlers
  // (functions) and plain attributes.
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
        } else if (/^on[a-z]+$/.test(key) && typeof value === "function") {
          el.addEventListener(key.slice(2), value);
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
      node = card.render(lastData, api);
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

  // setActions takes the card's actions (role -> tool name) from _meta.
  function setActions(a) {
    if (!isPlainObject(a)) {
      return;
    }
    var next = {};
    for (var role in a) {
      if (Object.prototype.hasOwnProperty.call(a, role) && typeof a[role] === "string" && a[role] !== "") {
        next[role] = a[role];
      }
    }
    actions = next;
  }

  // setScopes takes the words for each scope from _meta.
  function setScopes(s) {
    if (!isPlainObject(s)) {
      return;
    }
    for (var name in s) {
      if (Object.prototype.hasOwnProperty.call(s, name) && typeof s[name] === "string" && s[name] !== "") {
        scopeText[name] = s[name];
      }
    }
  }

  // scopeWords says what a scope allows, or gives its name when unknown.
  function scopeWords(name) {
    return Object.prototype.hasOwnProperty.call(scopeText, name) ? scopeText[name] : String(name);
  }

  // readMeta takes the result's _meta: the card's actions first, then a
  // refusal. It returns true when the result was a refusal it has shown.
  function readMeta(meta) {
    if (!isPlainObject(meta)) {
      return false;
    }
    setActions(meta[META_ACTIONS]);
    setScopes(meta[META_SCOPES]);
    if (isPlainObject(meta[META_STEP_UP])) {
      showStepUp(meta[META_STEP_UP]);
      return true;
    }
    if (typeof meta[META_ERROR] === "string" && meta[META_ERROR]) {
      showError(meta[META_ERROR], FAILED);
      return true;
    }
    return false;
  }

  // textOf joins the text blocks of a CallToolResult.
  function textOf(result) {
    var texts = [];
    if (Array.isArray(result.content)) {
      for (var i = 0; i < result.content.length; i++) {
        var block = result.content[i];
        if (isPlainObject(block) && block.type === "text" && typeof block.text === "string") {
          texts.push(block.text);
        }
      }
    }
    return texts.join(" ");
  }

  // deliverCallToolResult takes an MCP CallToolResult.
  function deliverCallToolResult(result) {
    if (!isPlainObject(result)) {
      showError("The host sent a tool result of an unexpected shape.");
      return;
    }
    hasResult = true;
    clearTimeout(waitTimer);
    if (readMeta(result._meta)) {
      return;
    }
    if (result.isError === true) {
      showError(textOf(result) || "The tool reported an error.", FAILED);
      return;
    }
    deliver(result.structuredContent);
  }

  // ---- step-up: the token lacks scopes ---------------------------------------

  function showStepUp(stepUp) {
    hasResult = true;
    lastData = null;
    clearTimeout(waitTimer);
    var missing = Array.isArray(stepUp.missing) ? stepUp.missing : [];
    var words = [];
    var items = [];
    for (var i = 0; i < missing.length && i < 20; i++) {
      var s = missing[i];
      if (!isPlainObject(s) || typeof s.scope !== "string") {
        continue;
      }
      var text = typeof s.description === "string" && s.description ? s.description : s.scope;
      words.push(text);
      items.push(h("li", { "class": "tg-stepup__scope", title: s.scope }, [text]));
    }
    var status = h("p", { "class": "tg-stepup__status", role: "status" }, []);
    var help = h("button", { type: "button", "class": "tg-button tg-stepup__help", hidden: "hidden" }, ["Ask for help reconnecting"]);
    var reconnect = h("button", { type: "button", "class": "tg-button tg-button--primary tg-stepup__reconnect" }, ["Reconnect"]);
    reconnect.addEventListener("click", function () {
      reconnect.disabled = true;
      status.textContent = "Checking access\u2026";
      // The host sees the tool's step-up challenge (the result's
      // mcp/www_authenticate and the response's WWW-Authenticate) and can
      // run the authorization again; a granted call draws the card.
      callTool("reload", {}).then(function (res) {
        if (isPlainObject(res.meta) && isPlainObject(res.meta[META_STEP_UP])) {
          reconnect.disabled = false;
          status.textContent = "Access is still missing. Approve the new permissions when asked, or reconnect the app in its settings, then try again.";
          help.hidden = false;
          return;
        }
        deliverCallToolResult(res.raw);
      }, function (err) {
        reconnect.disabled = false;
        status.textContent = err.message;
        help.hidden = false;
      });
    });
    help.addEventListener("click", function () {
      help.disabled = true;
      followUp("Help me reconnect this app so that it can use: " + words.join("; ") + ".").then(function () {
        status.textContent = "Asked the assistant for help.";
      }, function (err) {
        help.disabled = false;
        status.textContent = err.message;
      });
    });
    // A region, not an alert: it holds buttons. #tg-body is aria-live, so
    // the change is still announced.
    show("step-up", h("div", { "class": "tg-stepup", role: "region", "aria-labelledby": "tg-stepup-title" }, [
      h("p", { "class": "tg-stepup__title", id: "tg-stepup-title" }, ["More access needed"]),
      h("p", { "class": "tg-stepup__lead" }, [items.length
        ? "To show this, the app needs your permission for:"
        : "To show this, the app needs more permissions."]),
      items.length ? h("ul", { "class": "tg-stepup__scopes" }, items) : null,
      h("div", { "class": "tg-actions" }, [reconnect, help]),
      status
    ]));
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
      if (/^--[a-z0-9-]{1,64}$/.test(name) && typeof value === "string" && value.length <= 200 && !/[;{}<]/.test(value)) {
        root.style.setProperty(name, value);
      }
    }
  }

  // applyFonts takes hostContext.styles.css.fonts (@font-face rules) as a
  // constructed style sheet: no <style> element, so the card's CSP, which
  // has no 'unsafe-inline', does not need loosening. Font files still load
  // only from origins the CSP allows.
  var fontSheet = null;
  function applyFonts(css) {
    if (typeof css !== "string" || css.length > 20000 || typeof CSSStyleSheet !== "function" || !("adoptedStyleSheets" in document)) {
      return;
    }
    try {
      if (!fontSheet) {
        fontSheet = new CSSStyleSheet();
        document.adoptedStyleSheets = document.adoptedStyleSheets.concat([fontSheet]);
      }
      fontSheet.replaceSync(css); // @import rules are ignored here
    } catch (e) {
      // Unparsable CSS from the host: keep the card's own fonts.
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
      if (isPlainObject(c.styles.css)) {
        applyFonts(c.styles.css.fonts);
      }
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
    hostKind = "openai";
    applyContext({ theme: globals.theme, displayMode: globals.displayMode, locale: globals.locale });
    if ("widgetState" in globals) {
      widgetState = isPlainObject(globals.widgetState) ? globals.widgetState : null;
    }
    // ChatGPT hands the result's _meta over as toolResponseMetadata; the
    // gateway puts the card's actions, a refusal's scopes and a failed
    // call's message there.
    if (readMeta(globals.toolResponseMetadata)) {
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
  var hostCapabilities = {};

  function post(message) {
    window.parent.postMessage(message, "*");
  }

  function notify(method, params) {
    post({ jsonrpc: "2.0", method: method, params: params });
  }

  // request sends a JSON-RPC request; done(error, result) runs once, with
  // a JSON-RPC error object or the result.
  function request(method, params, done) {
    var id = nextId++;
    var timer = setTimeout(function () {
      if (pending[id]) {
        delete pending[id];
        done({ code: -32001, message: "The host did not answer in time." }, null);
      }
    }, CALL_MS);
    pending[id] = function (err, result) {
      clearTimeout(timer);
      done(err, result);
    };
    post({ jsonrpc: "2.0", id: id, method: method, params: params });
  }

  // rpc is request as a promise: rejected with an Error for a JSON-RPC error.
  function rpc(method, params) {
    return new Promise(function (resolve, reject) {
      request(method, params, function (err, result) {
        if (err) {
          reject(new Error(typeof err.message === "string" && err.message ? clip(err.message, MAX_ERROR_TEXT) : "The host refused the request."));
        } else {
          resolve(result);
        }
      });
    });
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
        done(m.error ? (isPlainObject(m.error) ? m.error : {}) : null, m.error ? null : m.result);
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
    }, function (err, result) {
      if (err || !isPlainObject(result)) {
        return; // Not an MCP Apps host after all; the wait timer tells the user.
      }
      hostKind = "mcp-apps";
      hostCapabilities = isPlainObject(result.hostCapabilities) ? result.hostCapabilities : {};
      applyContext(result.hostContext);
      mcpReady = true;
      notify("ui/notifications/initialized", {});
      lastWidth = -1;
      reportSize();
    });
  }

  // ---- interactions ----------------------------------------------------------

  function refuse(text) {
    return Promise.reject(new Error(text));
  }

  // toResult turns what a host answers to a tool call into
  // {raw, isError, structuredContent, meta, text}. MCP Apps answers a
  // CallToolResult; ChatGPT's callTool resolves to the same fields (older
  // runtimes: {result: "<text>"}).
  function toResult(r) {
    if (!isPlainObject(r)) {
      r = {};
    }
    var raw = {
      content: Array.isArray(r.content) ? r.content : (typeof r.result === "string" ? [{ type: "text", text: r.result }] : []),
      structuredContent: r.structuredContent,
      isError: r.isError === true,
      _meta: isPlainObject(r._meta) ? r._meta : (isPlainObject(r.meta) ? r.meta : undefined)
    };
    var res = { raw: raw, isError: raw.isError, structuredContent: raw.structuredContent, meta: raw._meta || {}, text: textOf(raw) };
    setActions(res.meta[META_ACTIONS]);
    setScopes(res.meta[META_SCOPES]);
    return res;
  }

  // callTool calls the tool behind the card's action role ("reload",
  // "revoke"...). It resolves to the result (a tool error included, with
  // isError) and rejects with an Error the card can show when the call
  // could not be made.
  function callTool(role, args) {
    var name = actions[role];
    if (typeof name !== "string" || !name) {
      return refuse("This card cannot do that here: the host did not say which tool to call.");
    }
    if (!isPlainObject(args)) {
      args = {};
    }
    if (hostKind === "openai") {
      if (typeof window.openai.callTool !== "function") {
        return refuse("This host does not let cards call tools.");
      }
      return Promise.resolve().then(function () {
        return window.openai.callTool(name, args);
      }).then(toResult, function (e) {
        throw new Error(e && e.message ? clip(e.message, MAX_ERROR_TEXT) : "The host could not call the tool.");
      });
    }
    if (hostKind === "mcp-apps") {
      if (!isPlainObject(hostCapabilities.serverTools)) {
        return refuse("This host does not let cards call tools.");
      }
      return rpc("tools/call", { name: name, arguments: args }).then(toResult);
    }
    return refuse("There is no host to call the tool.");
  }

  // followUp posts text to the conversation as the user's next message.
  function followUp(text) {
    text = String(text || "").trim();
    if (!text) {
      return refuse("There is no message to send.");
    }
    text = clip(text, MAX_MESSAGE_TEXT);
    if (hostKind === "openai") {
      if (typeof window.openai.sendFollowUpMessage !== "function") {
        return refuse("This host does not take messages from cards.");
      }
      return Promise.resolve().then(function () {
        return window.openai.sendFollowUpMessage({ prompt: text });
      }).then(function () {});
    }
    if (hostKind === "mcp-apps") {
      return rpc("ui/message", { role: "user", content: [{ type: "text", text: text }] }).then(function (r) {
        if (isPlainObject(r) && r.isError === true) {
          throw new Error("The host did not send the message.");
        }
      });
    }
    return refuse("There is no host to send the message to.");
  }

  // openLink asks the host to open an http(s) URL outside the card.
  function openLink(href) {
    var url;
    try {
      url = new URL(String(href));
    } catch (e) {
      return refuse("That link is not a valid address.");
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      return refuse("Only web links can be opened.");
    }
    if (hostKind === "openai") {
      if (typeof window.openai.openExternal !== "function") {
        return refuse("This host does not open links from cards.");
      }
      return Promise.resolve().then(function () {
        return window.openai.openExternal({ href: url.href });
      }).then(function () {});
    }
    if (hostKind === "mcp-apps") {
      return rpc("ui/open-link", { url: url.href }).then(function (r) {
        if (isPlainObject(r) && r.isError === true) {
          throw new Error("The host did not open the link.");
        }
      });
    }
    return refuse("There is no host to open the link.");
  }

  // getState returns the card's saved state (a plain object) or null.
  function getState() {
    return widgetState;
  }

  // setState saves the card's state. ChatGPT keeps it with the message and
  // shows it to the model (setWidgetState); MCP Apps has no state store yet
  // (SEP-1865 lists it under future work), so the bridge keeps it for the
  // view's life and tells the model with ui/update-model-context.
  function setState(state) {
    if (!isPlainObject(state)) {
      return refuse("Card state must be an object.");
    }
    widgetState = state;
    if (hostKind === "openai" && typeof window.openai.setWidgetState === "function") {
      return Promise.resolve().then(function () {
        return window.openai.setWidgetState(state);
      }).then(function () {});
    }
    if (hostKind === "mcp-apps") {
      return rpc("ui/update-model-context", { structuredContent: state }).then(function () {}, function () {
        // A host without model context still has the state in the view.
      });
    }
    return Promise.resolve();
  }

  // missingScopes returns what a step-up refusal (a result of callTool
  // carrying _meta["tollgate/stepUp"]) lacks: [{scope, text}], text being
  // what the scope allows in the user's words. It returns null for any
  // other result, so a card can tell "reconnect to grant more" from a
  // failure whose text it shows.
  function missingScopes(res) {
    var stepUp = isPlainObject(res) && isPlainObject(res.meta) ? res.meta[META_STEP_UP] : undefined;
    if (!isPlainObject(stepUp)) {
      return null;
    }
    var missing = Array.isArray(stepUp.missing) ? stepUp.missing : [];
    var out = [];
    for (var i = 0; i < missing.length && out.length < 20; i++) {
      var s = missing[i];
      if (!isPlainObject(s) || typeof s.scope !== "string" || s.scope === "") {
        continue;
      }
      out.push({ scope: s.scope, text: typeof s.description === "string" && s.description ? s.description : scopeWords(s.scope) });
    }
    return out;
  }

  // update draws new structured data, e.g. a list a card reloaded.
  function update(data) {
    deliver(data);
  }

  // api is what render gets: DOM helpers and the interactions.
  var api = Object.freeze({
    h: h,
    formatTime: formatTime,
    get locale() { return ctx.locale; },
    get host() { return hostKind; },
    can: function (role) { return typeof actions[role] === "string"; },
    scopeWords: scopeWords,
    lastData: function () { return lastData; },
    callTool: callTool,
    missingScopes: missingScopes,
    followUp: followUp,
    openLink: openLink,
    getState: getState,
    setState: setState,
    update: update,
    showError: showError
  });

  // ---- mount ---------------------------------------------------------------

  // mount starts the bridge for the card. spec.name names the card (used in
  // appInfo), spec.check(data) returns "" or a sentence saying why the data
  // cannot be shown, and spec.render(data, api) returns the card's body.
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
