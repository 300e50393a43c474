// What both test hosts share: calling the real gateway. A host calls the
// MCP server itself, not the card: the page posts the call to the test's
// host server (POST /host/call), which sends tools/call to the running
// mcp-gateway with the access token named by token ("full" or "weak").
//
// A host that meets a step-up challenge (the result's
// _meta["mcp/www_authenticate"]) re-runs authorization; the test says
// whether the user approves (host.reauthorize), and the stronger token is
// "full".
//
// host.fixtures[name] (a function of the arguments and the host returning
// a CallToolResult) answers a tool the gateway does not have yet, in place
// of the call, with the same step-up handling (a fixture reads host.token);
// only the connections card's widget tests use it (the e2e
// TestConnectedAppsCardInBrowser calls the real capability).
(function () {
  "use strict";
  window.__gateway = function (host, name, args) {
    function once() {
      if (host.fixtures && typeof host.fixtures[name] === "function") {
        return Promise.resolve(host.fixtures[name](args || {}, host));
      }
      return fetch("/host/call", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: host.token, name: name, arguments: args || {} })
      }).then(function (r) {
        if (!r.ok) {
          return r.text().then(function (t) { throw new Error("host call failed: " + r.status + " " + t); });
        }
        return r.json();
      });
    }
    host.calls.push({ name: name, arguments: args || {} });
    return once().then(function (result) {
      var meta = result && result._meta;
      if (meta && meta["mcp/www_authenticate"] && host.reauthorize && host.token !== "full") {
        host.reauthorized++;
        host.token = "full";
        return once();
      }
      return result;
    });
  };
})();
