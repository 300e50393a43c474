package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	authv1 "github.com/tollgate/tollgate/proto/gen/tollgate/auth/v1"
)

// TestMetadataDocumentNameAndURIRules: a Client ID Metadata Document's
// client_name and client_uri meet registration's rule
// (clients.CheckNameAndURI): a javascript: client_uri, a name with a
// bidirectional override, an operator client's name (folded) and a name
// over 200 bytes refuse the document — invalid_client before any
// redirect, with registration's words (brkattack: a document kept
// javascript:alert(1) and such names). A document cached before the rule
// is refused at its next lookup: the connected-apps list names its grant
// by client id and carries no javascript: URI.
func TestMetadataDocumentNameAndURIRules(t *testing.T) {
	const redirect = "http://127.0.0.1:8978/cimd-names-callback"
	docs := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(doc))
	}))
	defer srv.Close()
	doc := func(path, members string) string {
		id := srv.URL + path
		docs[path] = `{"client_id":"` + id + `","redirect_uris":["` + redirect + `"],"token_endpoint_auth_method":"none",` + members + `}`
		return id
	}
	f := startFleet(t, nil)

	for path, c := range map[string]struct{ members, want string }{
		"/javascript.json": {`"client_name":"Notes","client_uri":"javascript:alert(1)"`, `client_uri 'javascript:alert(1)': must be an http or https URL`},
		"/data.json":       {`"client_name":"Notes","client_uri":"data:text/html,hi"`, `client_uri 'data:text/html,hi': must be an http or https URL`},
		"/bidi.json":       {`"client_name":"\u202etneilc tset lacoL"`, "client_name must not contain control or bidirectional formatting characters"},
		"/operator.json":   {`"client_name":"LOCAL test-client"`, `client_name 'LOCAL test-client' is the name of an app registered by this server's operator; choose another name`},
		"/long.json":       {`"client_name":"` + strings.Repeat("n", 201) + `"`, "client_name is too long"},
	} {
		t.Run(path, func(t *testing.T) {
			a := newAuthRequest(devClient{ClientID: doc(path, c.members), RedirectURIs: []string{redirect}, AuthMethod: "none"})
			p := newBrowser(t, redirect).get(a.URL(f.Base))
			if p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "<code>invalid_client</code>") {
				t.Errorf("%d %v, want the 400 invalid_client page:\n%s", p.Status, p.Location, p.Body)
			}
			st, code, desc := authorizeJSON(t, a.URL(f.Base), "", "")
			if st != http.StatusBadRequest || code != "invalid_client" || !strings.Contains(desc, "client metadata document: "+c.want) {
				t.Errorf("JSON %d %s %q, want 400 invalid_client saying %q", st, code, desc, c.want)
			}
			// The client was found and its document refused: not "unknown client" (verify).
			if strings.Contains(desc, "unknown client") {
				t.Errorf("a refused metadata document is described as an unknown client: %q", desc)
			}
		})
	}

	// A document with a web home page is used; its grant is listed with it.
	id := doc("/client.json", `"client_name":"Notes","client_uri":"https://notes.example/"`)
	c := devClient{ClientID: id, RedirectURIs: []string{redirect}, AuthMethod: "none"}
	a := newAuthRequest(c)
	a.Scope, a.Resource = "openid connections.read", f.Base+"/mcp"
	b, p := consentPage(t, f, a)
	tr := f.exchange(c, a, approve(t, b, p))
	if tr.Status != http.StatusOK {
		t.Fatalf("token: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	conn, err := grpc.NewClient(f.AS.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	grants := authv1.NewGrantsServiceClient(conn)
	listed := func() *authv1.Connection {
		t.Helper()
		list, err := grants.ListGrants(bearer(tr.AccessToken), &authv1.ListGrantsRequest{})
		if err != nil || len(list.GetConnections()) != 1 {
			t.Fatalf("connections: %v %v, want one", list.GetConnections(), err)
		}
		return list.GetConnections()[0]
	}
	if x := listed(); x.GetClientName() != "Notes" || x.GetClientUri() != "https://notes.example/" {
		t.Errorf("connection %v, want Notes at https://notes.example/", x)
	}

	// The cached document, as one cached before the rule, now says
	// javascript:alert(1).
	rdb := redis.NewClient(&redis.Options{Addr: f.Redis.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	var key string
	for _, k := range rdb.Keys(ctx, "*as:cimd:*").Val() {
		if strings.Contains(rdb.Get(ctx, k).Val(), `"client_id":"`+id+`"`) {
			key = k
		}
	}
	if key == "" {
		t.Fatal("the metadata document is not cached")
	}
	var rec struct {
		Doc   map[string]any `json:"doc"`
		Until int64          `json:"until"`
	}
	if err := json.Unmarshal([]byte(rdb.Get(ctx, key).Val()), &rec); err != nil || rec.Doc == nil {
		t.Fatalf("the cached entry is no {doc, until} record: %v", err)
	}
	rec.Doc["client_uri"] = "javascript:alert(1)"
	raw, _ := json.Marshal(rec)
	if err := rdb.Set(ctx, key, raw, redis.KeepTTL).Err(); err != nil {
		t.Fatal(err)
	}
	if x := listed(); x.GetClientName() != id || x.GetClientUri() != "" {
		t.Errorf("connection of a cached document with a javascript: client_uri: %v, want listed by client id without a URI", x)
	}
	a = newAuthRequest(c)
	if st, code, desc := authorizeJSON(t, a.URL(f.Base), "", ""); st != http.StatusBadRequest || code != "invalid_client" || !strings.Contains(desc, `client_uri 'javascript:alert(1)': must be an http or https URL`) {
		t.Errorf("authorization with the cached document: %d %s %q, want 400 invalid_client", st, code, desc)
	}
}
