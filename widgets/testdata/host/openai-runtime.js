// A stand-in for ChatGPT's widget runtime, for the browser tests. ChatGPT
// puts window.openai into the widget's document before the widget's own
// scripts run, fills toolOutput when the tool call returns, and fires
// "openai:set_globals" on window whenever a global changes.
//
// Query parameters of this script's URL:
//   theme=light|dark  the starting theme (default light)
//   late=1            install window.openai only at the first setGlobals
(function () {
  "use strict";
  var params = new URL(document.currentScript.src).searchParams;

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
      notifyIntrinsicHeight: function (height) {
        window.__host.heights.push(height);
      }
    };
  }

  window.__host = {
    heights: [],
    // setGlobals changes globals the way ChatGPT does: first on window.openai,
    // then an event that names the globals that changed.
    setGlobals: function (globals) {
      if (!window.openai) {
        install();
      }
      Object.assign(window.openai, globals);
      window.dispatchEvent(new CustomEvent("openai:set_globals", { detail: { globals: globals } }));
    }
  };

  if (params.get("late") !== "1") {
    install();
  }
})();
