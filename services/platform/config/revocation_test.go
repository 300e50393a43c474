package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/config"
)

func TestRevocationReconcileInterval(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    time.Duration
		problem string
	}{
		{"", 15 * time.Second, ""},
		{"2s", 2 * time.Second, ""},
		{"5m", 5 * time.Minute, ""},
		{"500ms", 500 * time.Millisecond, "outside [1s, 5m0s]"},
		{"6m", 6 * time.Minute, "outside [1s, 5m0s]"},
		{"often", 15 * time.Second, "not a duration"},
	} {
		s := config.NewSource(config.MapEnv(map[string]string{"REVOCATION_RECONCILE_INTERVAL": tc.value}))
		r := config.LoadRevocation(s)
		p := s.Problems()
		r.Validate(&p)
		if r.ReconcileInterval != tc.want {
			t.Errorf("%q: interval %s, want %s", tc.value, r.ReconcileInterval, tc.want)
		}
		err := p.Err()
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%q: unexpected problem %v", tc.value, err)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), "REVOCATION_RECONCILE_INTERVAL") || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%q: err = %v, want one naming REVOCATION_RECONCILE_INTERVAL and %q", tc.value, err, tc.problem)
		}
	}
}
