package widgets

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

const (
	assetDir    = "app-ui"
	templateDir = "templates"
)

// files holds the assets and the templates. The embed directive needs a
// package-level variable; nothing writes to it.
//
//go:embed app-ui templates
var files embed.FS

// Assets returns the tree served under [AssetPath]: a flat directory of
// versioned file names such as "mcp-widget-bridge-v1.js".
func Assets() fs.FS {
	sub, err := fs.Sub(files, assetDir)
	if err != nil {
		// fs.Sub fails only for an invalid path, and assetDir is a valid constant.
		panic(fmt.Sprintf("widgets: %v", err))
	}
	return sub
}

// ContentType returns the Content-Type for an asset name, by its extension.
func ContentType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".json", ".map":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".woff2":
		return "font/woff2"
	default:
		return "application/octet-stream"
	}
}

// AssetHandler serves [Assets] at [AssetPath]: mount it on that path of the
// public listener, e.g. mux.Handle(widgets.AssetPath, widgets.AssetHandler()).
//
// It answers GET and HEAD for the flat list of asset names only (no
// directory listing), with the content type from [ContentType], a strong
// ETag, nosniff, and the cross-origin headers a host's sandbox needs to load
// the files from another origin.
//
// Its refusals are JSON, like the rest of the gateway's:
//
//   - 404 {"error":"not_found","error_description":"no such widget asset; …"}
//     for a name that is not a file at the top of [Assets] (the bare
//     directory, a subpath, a missing name);
//   - 405 {"error":"method_not_allowed",…} with Allow: GET, HEAD for any
//     other method (RFC 9110 §15.5.6: a 405 must carry Allow);
//   - 416 {"error":"range_not_satisfiable",…} with Content-Range:
//     bytes */<size in bytes> for a bytes Range header that is invalid
//     ("bytes=abc", "bytes=5-2") or asks for no byte of the asset
//     ("bytes=<size>-") (RFC 9110 §14.2, §15.5.17).
//
// Ranges are otherwise http.ServeContent's: a satisfiable range is a 206
// with Content-Range, several are a 206 multipart/byteranges (RFC 9110
// §14.6), and If-Range with an ETag other than the asset's current one —
// or with a date, the assets having no Last-Modified — gets the whole
// asset (200) instead (§13.1.5). A Range in a unit other than bytes
// ("items=0-1"), or with no unit, is ignored (200), as §14.2 requires of
// an origin server.
func AssetHandler() http.Handler {
	assets := Assets()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				"widget assets answer GET and HEAD only")
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, AssetPath)
		var body []byte
		err := errors.New("not under " + AssetPath)
		if ok {
			if err = checkAssetName(assets, name); err == nil {
				body, err = fs.ReadFile(assets, name)
			}
		}
		if err != nil {
			writeError(w, http.StatusNotFound, "not_found", notFoundDesc)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ContentType(name))
		h.Set("ETag", `"`+contentHash(body)+`"`)
		// Names carry the contract version (-v1) and templates add the
		// content hash (?v=…), so a URL with the current hash never changes
		// meaning: cache it for a year. Any other URL of the asset (no or an
		// old hash) is revalidated after an hour.
		if r.URL.Query().Get("v") == contentHash(body) {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "public, max-age=3600")
		}
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		h.Set("Access-Control-Allow-Origin", "*")
		if rg := r.Header.Get("Range"); rg != "" {
			// ServeContent takes only "bytes=…" and answers 416 to any
			// other Range. RFC 9110 §14.1: range units are
			// case-insensitive; §14.2: an origin server MUST ignore a
			// Range in a unit it does not understand (and one that names
			// no unit at all is no range request).
			r = r.Clone(r.Context())
			if unit, set, ok := strings.Cut(rg, "="); ok && strings.EqualFold(unit, "bytes") {
				r.Header.Set("Range", "bytes="+set)
			} else {
				r.Header.Del("Range")
			}
		}
		http.ServeContent(&rangeRefusal{ResponseWriter: w, size: len(body)}, r, name, time.Time{}, bytes.NewReader(body))
	})
}

// rangeRefusal turns http.ServeContent's 416, a text/plain body, into the
// fleet's JSON refusal with Content-Range: bytes */<size>, which RFC 9110
// §15.5.17 asks of every 416 to a byte-range request (ServeContent sets it
// only for a range that misses the content, not for an invalid one). Every
// other answer passes through as ServeContent writes it.
type rangeRefusal struct {
	http.ResponseWriter
	size    int
	refused bool
}

func (w *rangeRefusal) WriteHeader(status int) {
	if status != http.StatusRequestedRangeNotSatisfiable {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.refused = true
	w.Header().Del("Content-Length") // ServeContent's error set none; writeError's body is its own
	w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", w.size))
	writeError(w.ResponseWriter, status, "range_not_satisfiable", fmt.Sprintf(
		"the Range header is not a valid bytes range of this asset, which is %d bytes long (RFC 9110 §14.1.2); "+
			"ask for bytes=<first>-<last> with first below %d, or send no Range for the whole asset", w.size, w.size))
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *rangeRefusal) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *rangeRefusal) Write(b []byte) (int, error) {
	if w.refused {
		return len(b), nil // ServeContent's text/plain reason: the JSON body replaced it
	}
	return w.ResponseWriter.Write(b)
}

// AssetURLPath is the path, on the public origin, of the current content of
// asset name: AssetPath + name + "?v=" + a hash of its bytes. Templates use
// it, so a fix to an asset changes its URL and hosts never keep a stale copy.
func AssetURLPath(name string) string {
	body, err := fs.ReadFile(Assets(), name)
	if err != nil {
		return AssetPath + name
	}
	return AssetPath + name + "?v=" + contentHash(body)
}

// notFoundDesc is the 404's description; it does not repeat the path asked
// for.
const notFoundDesc = "no such widget asset; assets are the flat file names under " + AssetPath + " that the widget templates refer to"

// writeError answers a refusal with the fleet's JSON error body
// {"error":code,"error_description":desc}, never cached.
func writeError(w http.ResponseWriter, status int, code, desc string) {
	body, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func contentHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:8])
}

// checkAssetName reports whether name is a file at the top of the asset tree.
func checkAssetName(assets fs.FS, name string) error {
	if name == "" || strings.Contains(name, "/") || !fs.ValidPath(name) {
		return fmt.Errorf("asset %q: not a plain file name", name)
	}
	info, err := fs.Stat(assets, name)
	if err != nil {
		return fmt.Errorf("asset %q: %w", name, err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("asset %q: not a file", name)
	}
	return nil
}
