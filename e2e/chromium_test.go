package e2e

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"
)

// startChromium starts headless Chromium (exe: /usr/bin/chromium, as the
// tests find it) with a profile of its own, and returns its first tab's
// chromedp context; the browser is closed when the test ends. The flags
// keep it from reaching the network on its own (background networking,
// component updates, sync) and fix its language and time zone, so that
// pages render the same on every machine.
func startChromium(t *testing.T, exe string) context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.UserDataDir(t.TempDir()), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.Flag("lang", "en-US"),
		chromedp.Env("TZ=UTC", "LANG=en_US.UTF-8"))...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	return ctx
}
