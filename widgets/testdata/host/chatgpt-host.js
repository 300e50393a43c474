// The ChatGPT side of the browser tests: the page that embeds the card's
// iframe and answers the window.openai methods that openai-runtime.js
// forwards. Tool calls go to the real gateway (gateway.js); follow-up
// messages, links, widget state and heights are recorded for the test.
//
// Query parameters: view=<absolute URL of the card>, token=full|weak.
(function () {
  "use strict";
  var params = new URLSearchParams(location.search);
  var viewURL = params.get("view");
  var viewOrigin = new URL(viewURL).origin;
  var frame = document.getElementById("view");

  var host = window.__host = {
    token: params.get("token") || "full",
    reauthorize: false,
    reauthorized: 0,
    fixtures: {},
    ready: false,
    installedAtStart: null,
    heights: [],
    calls: [],        // tools/call sent to the gateway, in order
    followUps: [],    // sendFollowUpMessage prompts
    links: [],        // openExternal hrefs
    states: [],       // setWidgetState values
    widgetState: null,
    fail: {},         // method -> error message to answer with
    setGlobals: function (globals) {
      frame.contentWindow.postMessage({ openaiTest: 1, type: "set_globals", globals: globals }, viewOrigin);
    },
    // runTool is the model calling a tool: ChatGPT calls it, then hands the
    // card the result as toolOutput and toolResponseMetadata.
    runTool: function (name, args) {
      return window.__gateway(host, name, args).then(function (r) {
        host.setGlobals({
          toolInput: args || {},
          toolOutput: r.structuredContent === undefined ? null : r.structuredContent,
          toolResponseMetadata: r._meta || null
        });
        return r;
      });
    }
  };

  function reply(id, result, error) {
    frame.contentWindow.postMessage({ openaiTest: 1, type: "reply", id: id, result: result, error: error }, viewOrigin);
  }

  window.addEventListener("message", function (event) {
    if (event.source !== frame.contentWindow || event.origin !== viewOrigin) {
      return;
    }
    var m = event.data;
    if (!m || m.openaiTest !== 1) {
      return;
    }
    if (host.fail[m.type]) {
      reply(m.id, null, host.fail[m.type]);
      return;
    }
    switch (m.type) {
      case "ready":
        host.ready = true;
        host.installedAtStart = m.installedAtStart;
        break;
      case "height":
        host.heights.push(m.height);
        if (m.height > 0) {
          frame.style.height = m.height + "px";
        }
        break;
      case "callTool":
        window.__gateway(host, m.payload.name, m.payload.args).then(function (r) {
          reply(m.id, r);
        }, function (e) {
          reply(m.id, null, e.message);
        });
        break;
      case "sendFollowUpMessage":
        host.followUps.push(m.payload && m.payload.prompt);
        reply(m.id, undefined);
        break;
      case "openExternal":
        host.links.push(m.payload && m.payload.href);
        reply(m.id, undefined);
        break;
      case "setWidgetState":
        host.widgetState = m.payload;
        host.states.push(m.payload);
        reply(m.id, undefined);
        break;
      default:
        reply(m.id, null, "unsupported: " + m.type);
    }
  });

  frame.src = viewURL;
})();
