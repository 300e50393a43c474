package tests

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// imageServices are the services that ship an image (charts/images/build.sh).
var imageServices = []string{"auth-server", "mcp-gateway", "actions-api", "capability-core", "dev-idp"}

// maxImageBytes bounds the compressed size of one image: a static Go binary
// on a base of a few kilobytes.
const maxImageBytes = 40 << 20

// TestImages checks the tarballs `make images` wrote to $IMAGES_DIR: the
// entrypoint is the service binary, the user is non-root, the platform is
// linux/amd64, there is no shell, the version is stamped, and the size is small.
func TestImages(t *testing.T) {
	dir := os.Getenv("IMAGES_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), ".cache", "images")
	}
	version := os.Getenv("IMAGE_VERSION")
	for _, s := range imageServices {
		t.Run(s, func(t *testing.T) {
			path := filepath.Join(dir, s+".tar")
			if _, err := os.Stat(path); err != nil {
				msg := "no image at " + path + "; run `make images`"
				if strict() {
					t.Fatal(msg)
				}
				t.Skip("SKIPPED: " + msg)
			}
			img, err := tarball.ImageFromPath(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" {
				t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
			}
			if u := cf.Config.User; u != "65532" && !strings.HasPrefix(u, "65532:") {
				t.Errorf("user %q, want 65532 (non-root)", u)
			}
			wantEntry := "/ko-app/" + s
			if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != wantEntry {
				t.Errorf("entrypoint %q, want [%s]", cf.Config.Entrypoint, wantEntry)
			}
			size := imageSize(t, img)
			t.Logf("%s: %d layers, %.1f MiB compressed", s, len(mustLayers(t, img)), float64(size)/(1<<20))
			if size > maxImageBytes {
				t.Errorf("image is %d bytes, more than %d", size, maxImageBytes)
			}

			files, binary := imageFiles(t, img, strings.TrimPrefix(wantEntry, "/"))
			for _, shell := range []string{"bin/sh", "bin/bash", "bin/busybox", "usr/bin/sh"} {
				if files[shell] {
					t.Errorf("image contains %s; production images have no shell", shell)
				}
			}
			for _, f := range []string{"etc/passwd", "etc/ssl/certs/ca-certificates.crt", wantEntry[1:]} {
				if !files[f] {
					t.Errorf("image lacks %s", f)
				}
			}
			if version != "" && !bytes.Contains(binary, []byte(version)) {
				t.Errorf("binary does not carry the version %q (ldflags not applied?)", version)
			}
		})
	}
}

func mustLayers(t *testing.T, img v1.Image) []v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func imageSize(t *testing.T, img v1.Image) int64 {
	t.Helper()
	var total int64
	for _, l := range mustLayers(t, img) {
		n, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}

// imageFiles lists the regular files and links of every layer, and returns
// the content of the file at binPath.
func imageFiles(t *testing.T, img v1.Image, binPath string) (map[string]bool, []byte) {
	t.Helper()
	files := map[string]bool{}
	var binary []byte
	for _, l := range mustLayers(t, img) {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			name := strings.TrimPrefix(filepath.Clean(h.Name), "/")
			if h.Typeflag == tar.TypeDir {
				continue
			}
			files[name] = true
			if name == binPath {
				if binary, err = io.ReadAll(tr); err != nil {
					t.Fatal(err)
				}
			}
		}
		rc.Close()
	}
	return files, binary
}
