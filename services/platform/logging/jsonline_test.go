package logging

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// randomLogString is a string of the bytes a JSON encoder treats apart:
// quotes, backslashes, control bytes, <>&, U+2028/2029, other UTF-8 and
// invalid UTF-8.
func randomLogString(rng *rand.Rand) string {
	parts := []string{"a", "Z", "9", " ", `"`, `\`, "\n", "\r", "\t", "\x00", "\x01", "\x1f", "\x7f", "<", ">", "&",
		"\u2028", "\u2029", "é", "日本", "\xff", "\xc3", "\xed\xa0\x80", "/", "=", "@", "ory_rt_x", "%41"}
	var sb strings.Builder
	for range rng.IntN(12) {
		sb.WriteString(parts[rng.IntN(len(parts))])
	}
	return sb.String()
}

func randomLogFloat(rng *rand.Rand) float64 {
	special := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99999e-7, 1e-7, 1.5e-9, 1e20, 1e21, 1.2345e21, -3e-300,
		math.MaxFloat64, math.SmallestNonzeroFloat64, 123456789.125, math.Inf(1), math.Inf(-1), math.NaN()}
	switch rng.IntN(3) {
	case 0:
		return special[rng.IntN(len(special))]
	case 1:
		return rng.Float64() * math.Pow(10, float64(rng.IntN(60)-30))
	}
	return math.Float64frombits(rng.Uint64())
}

// randomLogAttr is an attribute of any kind: the fast path's and every
// other (groups, times, any values, errors, LogValuers, empty keys).
func randomLogAttr(rng *rand.Rand, depth int) slog.Attr {
	keys := []string{"route", "status", "duration_ms", "client_id", "", "k\"ey", "é\n", "<&>"}
	key := keys[rng.IntN(len(keys))]
	if rng.IntN(3) == 0 {
		key = randomLogString(rng)
	}
	switch rng.IntN(14) {
	case 0, 1, 2:
		return slog.String(key, randomLogString(rng))
	case 3:
		return slog.Int64(key, int64(rng.Uint64()))
	case 4:
		return slog.Uint64(key, rng.Uint64())
	case 5, 6:
		return slog.Float64(key, randomLogFloat(rng))
	case 7:
		return slog.Bool(key, rng.IntN(2) == 0)
	case 8:
		return slog.Duration(key, time.Duration(rng.Int64()))
	case 9:
		return slog.Time(key, time.Unix(rng.Int64N(1<<35), rng.Int64N(1e9)))
	case 10:
		if depth < 2 {
			as := make([]slog.Attr, rng.IntN(3))
			for i := range as {
				as[i] = randomLogAttr(rng, depth+1)
			}
			return slog.Attr{Key: key, Value: slog.GroupValue(as...)}
		}
		return slog.Attr{}
	case 11:
		return slog.Any(key, errors.New(randomLogString(rng)))
	case 12:
		return slog.Any(key, secretValuer{group: rng.IntN(2) == 0})
	}
	return slog.Any(key, []string{randomLogString(rng)})
}

// The fast path writes what slog.JSONHandler writes, byte for byte, for
// every record — those it writes itself and those it passes on — after any
// WithAttrs and WithGroup.
func TestJSONHandlerAsSlogs(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 17))
	times := []time.Time{
		{}, time.Date(2026, 12, 6, 7, 8, 9, 0, time.UTC), time.Date(2026, 12, 6, 7, 8, 9, 120000000, time.UTC),
		time.Date(1999, 1, 2, 3, 4, 5, 6, time.FixedZone("x", -5*3600-1800)), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Now(),
	}
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelInfo + 2, slog.LevelError + 7}
	fastLines := 0
	for i := range 5000 {
		var got, want bytes.Buffer
		opts := &slog.HandlerOptions{Level: slog.LevelDebug}
		var h slog.Handler = newJSONHandler(&got, opts)
		var r slog.Handler = slog.NewJSONHandler(&want, opts)
		for range rng.IntN(3) {
			if rng.IntN(4) == 0 {
				name := []string{"", "grp", "g\"rp"}[rng.IntN(3)]
				h, r = h.WithGroup(name), r.WithGroup(name)
				continue
			}
			as := make([]slog.Attr, rng.IntN(4))
			for j := range as {
				if rng.IntN(2) == 0 {
					as[j] = slog.String("service", "auth-server")
				} else {
					as[j] = randomLogAttr(rng, 0)
				}
			}
			h, r = h.WithAttrs(as), r.WithAttrs(as)
		}
		rec := slog.NewRecord(times[rng.IntN(len(times))], levels[rng.IntN(len(levels))], randomLogString(rng), 0)
		for range rng.IntN(10) {
			if rng.IntN(2) == 0 {
				rec.AddAttrs(slog.String("route", randomLogString(rng)), slog.Float64("duration_ms", randomLogFloat(rng)))
			} else {
				rec.AddAttrs(randomLogAttr(rng, 0))
			}
		}
		if jh := h.(*jsonHandler); jh.fast {
			if _, ok := jh.appendRecord(nil, rec); ok {
				fastLines++
			}
		}
		errGot, errWant := h.Handle(context.Background(), rec.Clone()), r.Handle(context.Background(), rec.Clone())
		if (errGot == nil) != (errWant == nil) || got.String() != want.String() {
			t.Fatalf("record %d:\n got  %q (%v)\n want %q (%v)", i, got.String(), errGot, want.String(), errWant)
		}
		for _, l := range levels {
			if h.Enabled(context.Background(), l) != r.Enabled(context.Background(), l) {
				t.Fatalf("record %d: Enabled(%v) differs", i, l)
			}
		}
	}
	if fastLines < 500 {
		t.Fatalf("only %d of 5000 records took the fast path", fastLines)
	}
}

// An access-log line is written by the fast path, as slog writes it.
func TestAccessLineTakesTheFastPath(t *testing.T) {
	var got, want bytes.Buffer
	h := newJSONHandler(&got, nil).WithAttrs([]slog.Attr{slog.String("service", "auth-server")})
	r := slog.NewJSONHandler(&want, nil).WithAttrs([]slog.Attr{slog.String("service", "auth-server")})
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
	rec.AddAttrs(slog.String("http_method", "POST"), slog.String("route", "/oauth/token"), slog.Int("status", 200),
		slog.Float64("duration_ms", 1.234567), slog.String("client_id", "gpt-apps-mcp"), slog.String("request_id", "r-1"))
	if _, ok := h.(*jsonHandler).appendRecord(nil, rec); !ok || !h.(*jsonHandler).fast {
		t.Fatal("an access-log line took slog's path")
	}
	if err := h.Handle(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if err := r.Handle(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Fatalf("got  %s\nwant %s", got.String(), want.String())
	}
}

// A line from the fast path and one from slog's, logged at once by
// handlers derived from one, reach the writer one at a time, whole (the
// race detector sees a bytes.Buffer written concurrently).
func TestJSONHandlerLinesWrittenOneAtATime(t *testing.T) {
	var out bytes.Buffer
	base := newJSONHandler(&out, nil)
	fast := base.WithAttrs([]slog.Attr{slog.String("service", "s")})
	slow := base.WithGroup("g")
	var wg sync.WaitGroup
	for _, h := range []slog.Handler{fast, slow, base, fast, slow} {
		wg.Go(func() {
			for range 200 {
				rec := slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0)
				rec.AddAttrs(slog.Int("i", 1))
				if err := h.Handle(context.Background(), rec); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1000 {
		t.Fatalf("%d lines, want 1000", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `{"time":`) || !strings.HasSuffix(l, "}") {
			t.Fatalf("line %q", l)
		}
	}
}
