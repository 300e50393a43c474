package telemetry

import (
	"os"
	"regexp"
	"testing"
	"time"
)

// TestOOMHoldOutlastsTheAlert: an OOM reply keeps tollgate_redis_up at 0
// for oomHold when no write clears it, so under light traffic (failing
// requests a minute or more apart) the gauge reads 0 between them only if
// the hold is longer than TollgateRedisDown's `for:` plus a scrape
// interval (30 s, the chart's ServiceMonitor default); at a hold equal to
// the `for:` the samples went 0, 0, 1 and the alert never fired (review5).
func TestOOMHoldOutlastsTheAlert(t *testing.T) {
	rules, err := os.ReadFile("../../../charts/tollgate/files/prometheus-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)alert: TollgateRedisDown\n.*?\n\s+for: (\S+)\n`).FindSubmatch(rules)
	if m == nil {
		t.Fatal("TollgateRedisDown's for: not found in the chart's rules")
	}
	alertFor, err := time.ParseDuration(string(m[1]))
	if err != nil {
		t.Fatalf("TollgateRedisDown for: %q: %v", m[1], err)
	}
	const scrape, gap = 30 * time.Second, time.Minute
	if want := alertFor + scrape + gap; oomHold <= want {
		t.Errorf("oomHold %v, want more than TollgateRedisDown's for: %v + a scrape %v + a minute between failing requests", oomHold, alertFor, scrape)
	}
}

// Every write command has its own label: the process hook looks a
// command's write-ness up by its label, and "other" is no write.
func TestWriteCommandsAreLabelled(t *testing.T) {
	for c := range writeCommands {
		if RedisCommandLabel(c) != c {
			t.Errorf("write command %q is labelled %q", c, RedisCommandLabel(c))
		}
	}
}
