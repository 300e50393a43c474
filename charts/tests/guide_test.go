package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The key-rotation guide (docs/operations/key-rotation.md) run as written,
// shared by testDocsGeneratedKeyRotation and testDocsHMACKeyRotation: a
// section's ```sh block split into its numbered steps, and the checkout an
// operator runs them from.

// The namespace the guide's commands are written for.
const docsRotationNamespace = "tollgate"

// docsRotationSteps returns the ```sh block of the section of
// docs/operations/key-rotation.md that begins with heading, split at its
// numbered comments ("# N." at the start of a line) into one step per entry
// of heads. The block must begin with a numbered comment, and step k's first
// line must read as heads[k] says: its text, where " ... " stands for
// anything ("# 2. ... 3." is a comment "# 2." that later names 3.).
func docsRotationSteps(t *testing.T, heading string, heads ...string) []string {
	t.Helper()
	script, inSection := docsFileBlock(t, filepath.Join("docs", "operations", "key-rotation.md"), heading, "bash")
	if !inSection {
		t.Fatalf("no ```bash block in the section %q", heading)
	}

	starts := regexp.MustCompile(`(?m)^# \d\.`).FindAllStringIndex(script, -1)
	if len(starts) != len(heads) || starts[0][0] != 0 {
		t.Fatalf("the rotation block of %q should be %d parts headed %q:\n%s", heading, len(heads), heads, script)
	}
	steps := make([]string, len(starts))
	for k, s := range starts {
		end := len(script)
		if k+1 < len(starts) {
			end = starts[k+1][0]
		}
		steps[k] = script[s[0]:end]
		if !headed(steps[k], heads[k]) {
			t.Fatalf("the rotation block of %q: its steps are no longer headed %q (part %d is not %q):\n%s", heading, heads, k+1, heads[k], script)
		}
	}
	return steps
}

// headed reports whether step's first line reads as head: it starts with
// head's text up to its first " ... ", and each later piece follows.
func headed(step, head string) bool {
	line, _, _ := strings.Cut(step, "\n")
	for k, piece := range strings.Split(head, " ... ") {
		i := strings.Index(line, piece)
		if i < 0 || (k == 0 && i != 0) {
			return false
		}
		line = line[i+len(piece):]
	}
	return true
}

// inNamespace points the guide's commands, written for namespace tollgate,
// at ns: every "-n tollgate " becomes "-n <ns> ". It fails when a command
// names the namespace another way, which the substitution would miss.
func inNamespace(t *testing.T, script, ns string) string {
	t.Helper()
	from := "-n " + docsRotationNamespace + " "
	if !strings.Contains(script, from) {
		t.Fatalf("the guide's commands no longer say %q:\n%s", from, script)
	}
	if strings.Contains(script, "--namespace") {
		t.Fatalf("the guide's commands use --namespace; only %q is substituted:\n%s", from, script)
	}
	return strings.ReplaceAll(script, from, "-n "+ns+" ")
}

// guideCheckout is where the guide's commands run: a checkout holding the
// chart under test as charts/tollgate and the operator's my-values.yaml,
// with kubectl, helm and openssl on PATH and KUBECONFIG the control plane's;
// the namespace the commands name is ns. HOME and TMPDIR are directories of
// the test's own, so that what the commands leave there is seen.
type guideCheckout struct {
	t         *testing.T
	cp        *controlPlane
	ns, dir   string
	home, tmp string
	helm      string
	helmEnv   []string
	path      string // the commands' PATH
}

// newGuideCheckout makes the checkout and the namespace ns. Without openssl
// the test is skipped (failed when strict).
func newGuideCheckout(t *testing.T, cp *controlPlane, helm string, helmEnv []string, ns string) *guideCheckout {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if strict() {
			t.Fatal("openssl is needed to run the key-rotation guide's commands")
		}
		t.Skip("SKIPPED: openssl is not installed")
	}
	cp.kubectlOK(timeout(t, time.Minute), "create", "namespace", ns)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "charts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(chartDir(t), filepath.Join(dir, "charts", "tollgate")); err != nil {
		t.Fatal(err)
	}
	return &guideCheckout{
		t: t, cp: cp, ns: ns, dir: dir, home: t.TempDir(), tmp: t.TempDir(), helm: helm, helmEnv: helmEnv,
		path: strings.Join([]string{filepath.Dir(cp.kubectl), filepath.Dir(helm), filepath.Dir(openssl), os.Getenv("PATH")}, string(os.PathListSeparator)),
	}
}

// install writes myValues as my-values.yaml and runs the guide's helm
// install of it (--wait); every Deployment must then be Available.
func (g *guideCheckout) install(myValues []byte) { g.t.Helper(); g.helmWait("install", myValues) }

// upgrade is install's helm upgrade.
func (g *guideCheckout) upgrade(myValues []byte) { g.t.Helper(); g.helmWait("upgrade", myValues) }

func (g *guideCheckout) helmWait(verb string, myValues []byte) {
	g.t.Helper()
	writeFile(g.t, filepath.Join(g.dir, "my-values.yaml"), myValues)
	if out, err := runIn(timeout(g.t, 6*time.Minute), g.dir, g.helmEnv, g.helm, verb, "tollgate", "charts/tollgate",
		"-n", g.ns, "-f", "my-values.yaml", "--wait", "--timeout=5m"); err != nil {
		g.t.Log(g.cp.describe(g.ns))
		g.t.Fatalf("%v\n%s", err, out)
	}
	g.cp.expectAvailable(g.t, g.ns, 4)
}

// step runs one step of the guide (script, in namespace ns) in its own bash
// shell in the checkout; name says which in the failure. Every Deployment
// must then be Available, and no private key may be left in the checkout,
// HOME or TMPDIR: the Secret is to be a key's only copy.
func (g *guideCheckout) step(name, script string) {
	g.t.Helper()
	sh := exec.CommandContext(timeout(g.t, 8*time.Minute), "bash", "-euo", "pipefail", "-c", inNamespace(g.t, script, g.ns))
	sh.Dir = g.dir
	sh.Env = append(append([]string{}, g.helmEnv...), "PATH="+g.path, "KUBECONFIG="+g.cp.kubeconfig, "HOME="+g.home, "TMPDIR="+g.tmp)
	if b, err := sh.CombinedOutput(); err != nil {
		g.t.Log(g.cp.describe(g.ns))
		g.t.Fatalf("the guide's %s commands failed: %v\n%s", name, err, b)
	}
	g.cp.expectAvailable(g.t, g.ns, 4)
	for _, dir := range []string{g.dir, g.home, g.tmp} {
		if left := privateKeyFiles(g.t, dir); len(left) > 0 {
			g.t.Fatalf("after the guide's %s commands private keys are left on disk: %s", name, strings.Join(left, ", "))
		}
	}
}

// privateKeyFiles returns the files under dir (symbolic links not
// followed) that hold a PEM private key.
func privateKeyFiles(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("PRIVATE KEY-----")) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
