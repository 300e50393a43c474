package api

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	actionsconfig "github.com/tollgate/tollgate/services/actions-api/internal/config"
	"github.com/tollgate/tollgate/services/actions-api/internal/openapi"
	"github.com/tollgate/tollgate/services/platform/config"
)

// Export is the `actions-api openapi` command: it writes the OpenAPI
// document for a given public origin, the same document the running
// service serves at /actions/openapi.json.
//
//	actions-api openapi -base-url https://actions.example.com [-oauth-base-url URL] [-out FILE]
func Export(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("actions-api openapi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	baseURL := fs.String("base-url", "", "public Actions origin written to servers (required, no path), e.g. https://actions.example.com")
	oauthBase := fs.String("oauth-base-url", "", "origin whose /oauth/authorize and /oauth/token the document names (default: -base-url)")
	out := fs.String("out", "-", "file to write, or - for standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("openapi: unexpected arguments %q", fs.Args())
	}
	var p config.Problems
	server := actionsconfig.Origin(&p, "-base-url", *baseURL, false)
	// Without -oauth-base-url the OAuth URLs are on -base-url, checked
	// above: checking it again under -oauth-base-url named a flag the
	// operator had not set, with the auth-server's reason.
	oauth := server
	if *oauthBase != "" {
		// An origin, as ACTIONS_OAUTH_BASE_URL is: the document names
		// <it>/oauth/authorize and <it>/oauth/token, which the Ingress
		// routes to the auth-server at the root of the host only.
		oauth = actionsconfig.OAuthOrigin(&p, "-oauth-base-url", *oauthBase, false)
	}
	if err := p.Err(); err != nil {
		return err
	}
	reg, err := Capabilities()
	if err != nil {
		return err
	}
	doc, err := openapi.Build(reg, openapi.Options{ServerURL: server, OAuthBaseURL: oauth})
	if err != nil {
		return err
	}
	b, err := doc.JSON()
	if err != nil {
		return err
	}
	// A document a GPT would refuse is not written: the running service
	// serves it and reports the problem, the export fails on it.
	if err := openapi.CheckLimits(b); err != nil {
		return err
	}
	if *out == "-" {
		_, err = stdout.Write(b)
		return err
	}
	if dir := filepath.Dir(*out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	fmt.Fprintf(stderr, "wrote %s (%d bytes)\n", *out, len(b))
	return nil
}
