// A stand-in for ChatGPT's widget runtime, for the browser tests. Like
// ChatGPT, the card runs in an iframe of its own origin, and the runtime
// puts window.openai into the card's document before the card's own
// scripts run (OpenAI Apps SDK, "Understand the window.openai API"):
// globals (theme, displayMode, locale, toolInput, toolOutput,
// toolResponseMetadata, widgetState) and methods (callTool,
// sendFollowUpMessage, openExternal, setWidgetState, requestDisplayMode,
// notifyIntrinsicHeight). It fires "openai:set_globals" on window whenever
// a global changes. The methods go to the host page (chatgpt-host.js) over
// postMessage, which plays ChatGPT's part: it calls the real gateway for
// callTool and records everything else.
//
// Query parameters of this script's URL:
//   theme=light|dark  the starting theme (default light)
//   late=1            install window.openai only at the first set_globals
(function () {
  "use strict";
  var params = new URL(document.currentScript.src).searchParams;
  var nextId = 1;
  var pending = {};

  function ask(type, payload) {
    return new Promise(function (resolve, reject) {
      var id = nextId++;
      pending[id] = { resolve: resolve, reject: reject };
      window.parent.postMessage({ openaiTest: 1, type: type, id: id, payload: payload }, "*");
    });
  }

  function setGlobals(globals) {
    if (!window.openai) {
      install();
    }
    Object.assign(window.openai, globals);
    window.dispatchEvent(new CustomEvent("openai:set_globals", { detail: { globals: globals } }));
  }

  function install() {
    window.openai = {
      theme: params.get("theme") || "light",
      displayMode: "inline",
      locale: "en-US",
      maxHeight: 720,
      toolInput: {},
      toolOutput: null,
      toolResponseMetadata: null,
      widgetState: null,
      callTool: function (name, args) {
        return ask("callTool", { name: name, args: args });
      },
      sendFollowUpMessage: function (options) {
        return ask("sendFollowUpMessage", options);
      },
      openExternal: function (options) {
        return ask("openExternal", options);
      },
      setWidgetState: function (state) {
        window.openai.widgetState = state;
        return ask("setWidgetState", state);
      },
      requestDisplayMode: function (options) {
        return ask("requestDisplayMode", options);
      },
      notifyIntrinsicHeight: function (height) {
        window.parent.postMessage({ openaiTest: 1, type: "height", height: height }, "*");
      }
    };
  }

  window.addEventListener("message", function (event) {
    if (event.source !== window.parent) {
      return;
    }
    var m = event.data;
    if (!m || m.openaiTest !== 1) {
      return;
    }
    if (m.type === "reply") {
      var p = pending[m.id];
      if (p) {
        delete pending[m.id];
        if (m.error) {
          p.reject(new Error(m.error));
        } else {
          p.resolve(m.result);
        }
      }
    } else if (m.type === "set_globals") {
      setGlobals(m.globals);
    }
  });

  var installedAtStart = params.get("late") !== "1";
  if (installedAtStart) {
    install();
  }
  window.addEventListener("load", function () {
    window.parent.postMessage({ openaiTest: 1, type: "ready", installedAtStart: installedAtStart }, "*");
  });
})();
