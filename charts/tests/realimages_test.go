package tests

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Images the real-cluster test builds on this machine (no registry is
// reachable): each a single layer, imported into containerd's k8s.io
// namespace, run with imagePullPolicy IfNotPresent or Never.
const (
	pauseImage   = "tollgate.test/pause:1"
	redisImage   = "tollgate.test/redis:debian"
	corednsImage = "tollgate.test/coredns:v1.14.7"
	traefikImage = "tollgate.test/traefik:v3.6.12"
)

// imageFile is one file of an image layer.
type imageFile struct {
	path string // inside the image, absolute
	mode int64
	body []byte
	dir  bool
}

// writeImage writes a one-layer linux/amd64 image as a docker-save tarball
// that `ctr images import` reads.
func writeImage(t *testing.T, path, ref string, files []imageFile, cfg v1.Config) string {
	t.Helper()
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	mkdirs := func(p string) {
		var parents []string
		for d := filepath.Dir(p); d != "/" && d != "."; d = filepath.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if !dirs[d] {
				dirs[d] = true
				_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: time.Unix(0, 0)})
			}
		}
	}
	for _, f := range files {
		mkdirs(f.path)
		if f.dir {
			if !dirs[f.path] {
				dirs[f.path] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(f.path, "/") + "/", Mode: f.mode, ModTime: time.Unix(0, 0)}); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.path, "/"), Mode: f.mode, Size: int64(len(f.body)), ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", "amd64", cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
	return path
}

func readHostFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildPauseImage compiles testdata/pause statically into the sandbox image.
func buildPauseImage(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./testdata/pause")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build pause: %v\n%s", err, out)
	}
	return writeImage(t, filepath.Join(dir, "pause.tar"), pauseImage,
		[]imageFile{{path: "/pause", mode: 0o755, body: readHostFile(t, bin)}},
		v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"})
}

var lddLib = regexp.MustCompile(`(/\S+) \(0x`)

// buildRedisImage packages Debian's redis-server and redis-cli (the chart's
// probes run it) with the shared libraries ldd names and a /bin/sh (the
// chart's script writes the passwords redis.conf includes), the way the bundled Redis
// of the chart runs them: uid 999, /data and /tmp are volumes.
func buildRedisImage(t *testing.T, dir string) string {
	t.Helper()
	bins := map[string]string{"/usr/bin/redis-server": "redis-server", "/usr/bin/redis-cli": "redis-cli", "/bin/sh": "sh"}
	var files []imageFile
	libs := map[string]bool{}
	for inImage, hostName := range bins {
		p, err := exec.LookPath(hostName)
		if err != nil {
			t.Fatalf("%s: %v (apt-get install redis-server)", hostName, err)
		}
		files = append(files, imageFile{path: inImage, mode: 0o755, body: readHostFile(t, p)})
		out, err := exec.Command("ldd", p).CombinedOutput()
		if err != nil {
			t.Fatalf("ldd %s: %v %s", p, err, out)
		}
		for _, m := range lddLib.FindAllStringSubmatch(string(out), -1) {
			libs[m[1]] = true
		}
	}
	for lib := range libs {
		files = append(files, imageFile{path: lib, mode: 0o755, body: readHostFile(t, lib)})
	}
	files = append(files,
		imageFile{path: "/etc/passwd", mode: 0o644, body: []byte("root:x:0:0:root:/root:/sbin/nologin\nredis:x:999:999:redis:/data:/sbin/nologin\n")},
		imageFile{path: "/etc/group", mode: 0o644, body: []byte("root:x:0:\nredis:x:999:\n")},
		imageFile{path: "/data", mode: 0o755, dir: true},
		imageFile{path: "/tmp", mode: 0o1777, dir: true},
	)
	return writeImage(t, filepath.Join(dir, "redis.tar"), redisImage, files,
		v1.Config{Entrypoint: []string{"/usr/bin/redis-server"}, User: "999:999", WorkingDir: "/data"})
}

// buildBinaryImage puts one static binary of the tools directory into an
// image, run as a non-root user.
func buildBinaryImage(t *testing.T, dir, ref, bin string) string {
	t.Helper()
	base := filepath.Base(bin)
	return writeImage(t, filepath.Join(dir, base+".tar"), ref, []imageFile{
		{path: "/" + base, mode: 0o755, body: readHostFile(t, bin)},
		{path: "/etc/passwd", mode: 0o644, body: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n")},
		{path: "/tmp", mode: 0o1777, dir: true},
	}, v1.Config{Entrypoint: []string{"/" + base}, User: "65532:65532"})
}

// importFleetImages imports the tarballs `make images` wrote and returns the
// registry and tag they carry (ghcr.io/tollgate and IMAGE_VERSION).
func (rc *realCluster) importFleetImages(t *testing.T) (registry, tag string) {
	t.Helper()
	dir := os.Getenv("IMAGES_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), ".cache", "images")
	}
	tag = os.Getenv("IMAGE_VERSION")
	for _, s := range []string{"auth-server", "mcp-gateway", "actions-api", "capability-core", "dev-idp"} {
		p := filepath.Join(dir, s+".tar")
		if _, err := os.Stat(p); err != nil {
			msg := fmt.Sprintf("image %s is not built (%v); run `make images` first", s, err)
			if strict() {
				t.Fatal(msg)
			}
			t.Skip("SKIPPED: " + msg)
		}
		rc.importImage(t, p)
	}
	out, err := run(timeout(t, time.Minute), nil, rc.ctr, "--address", rc.containerd, "-n", "k8s.io", "images", "ls", "-q")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range strings.Fields(out) {
		if r, tg, ok := strings.Cut(ref, "/auth-server:"); ok {
			registry = r
			if tag == "" {
				tag = tg
			}
		}
	}
	if registry == "" {
		t.Fatalf("no auth-server image among the imported ones:\n%s", out)
	}
	return registry, tag
}

// loadImages builds and imports every image the chart and the cluster's
// add-ons run.
func (rc *realCluster) loadImages(t *testing.T) (registry, tag string) {
	t.Helper()
	start := time.Now()
	rc.importImage(t, buildRedisImage(t, rc.dir))
	rc.importImage(t, buildBinaryImage(t, rc.dir, corednsImage, tool(t, "coredns")))
	rc.importImage(t, buildBinaryImage(t, rc.dir, traefikImage, tool(t, "traefik")))
	registry, tag = rc.importFleetImages(t)
	t.Logf("images built and imported in %s", time.Since(start).Round(time.Second))
	return registry, tag
}

var _ = context.Background
