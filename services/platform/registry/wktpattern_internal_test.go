package registry

import (
	"regexp"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// patternCase is a value, whether the schema's pattern admits it and
// whether the API (protojson, which decodes every body, query and path
// value of the type) takes it.
type patternCase struct {
	value       string
	schema, api bool
	why         string // where they differ, why that is the document's choice
}

// checkPattern runs each case through the pattern (Go's regexp: the
// patterns use only syntax ECMAScript's RegExp reads the same — classes,
// groups, alternation, counted repetition — as the document's consumers'
// validators do) and through protojson into m.
func checkPattern(t *testing.T, pattern string, m proto.Message, cases []patternCase) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	for _, tc := range cases {
		if got := re.MatchString(tc.value); got != tc.schema {
			t.Errorf("%q: pattern admits %v, want %v", tc.value, got, tc.schema)
		}
		err := protojson.Unmarshal([]byte(`"`+tc.value+`"`), m)
		if got := err == nil; got != tc.api {
			t.Errorf("%q: protojson takes %v (%v), want %v", tc.value, got, err, tc.api)
		}
		if tc.schema && !tc.api && tc.why == "" {
			t.Errorf("%q: the pattern admits a value the API refuses, with no reason given", tc.value)
		}
	}
}

// TestDurationPatternIsTheAPIs: the Duration schema's pattern admits
// exactly what protojson takes, up to ±315576000000 s (the Duration's
// range) and no further. It admitted 12 digits of seconds (brk50a
// finding 5: "315576000001s" and "-999999999999s" were schema-valid and
// answered 400).
func TestDurationPatternIsTheAPIs(t *testing.T) {
	checkPattern(t, durationPattern, &durationpb.Duration{}, []patternCase{
		{value: "0s", schema: true, api: true},
		{value: "1.5s", schema: true, api: true},
		{value: "-0.25s", schema: true, api: true},
		{value: "+3s", schema: true, api: true},
		{value: ".5s", schema: true, api: true},
		{value: "1.s", schema: true, api: true},
		{value: "1.123456789s", schema: true, api: true},
		{value: "1.1234567891s", schema: false, api: false},
		{value: "99999999999s", schema: true, api: true}, // 11 digits
		{value: "100000000000s", schema: true, api: true},
		{value: "299999999999s", schema: true, api: true},
		{value: "309999999999s", schema: true, api: true},
		{value: "314999999999s", schema: true, api: true},
		{value: "315499999999s", schema: true, api: true},
		{value: "315569999999s", schema: true, api: true},
		{value: "315575999999s", schema: true, api: true},
		{value: "315576000000s", schema: true, api: true}, // the bound
		{value: "315576000000.999999999s", schema: true, api: true},
		{value: "-315576000000.999999999s", schema: true, api: true},
		{value: "+315576000000s", schema: true, api: true},
		{value: "315576000001s", schema: false, api: false}, // one past
		{value: "-315576000001s", schema: false, api: false},
		{value: "315576000010s", schema: false, api: false},
		{value: "315576100000s", schema: false, api: false},
		{value: "315577000000s", schema: false, api: false},
		{value: "315580000000s", schema: false, api: false},
		{value: "315600000000s", schema: false, api: false},
		{value: "316000000000s", schema: false, api: false},
		{value: "320000000000s", schema: false, api: false},
		{value: "400000000000s", schema: false, api: false},
		{value: "999999999999s", schema: false, api: false},
		{value: "-999999999999s", schema: false, api: false},
		{value: "1000000000000s", schema: false, api: false},
		{value: "01s", schema: false, api: false},
		{value: "1", schema: false, api: false},
		{value: "s", schema: false, api: false},
		{value: "1e3s", schema: false, api: false},
	})
}

// TestTimestampPatternIsTheAPIs: the Timestamp schema's pattern admits
// what protojson takes, from 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z. It admitted the year 0000 (brk50a
// finding 5) and any two digits for month, day, hour, minute, second and
// offset.
func TestTimestampPatternIsTheAPIs(t *testing.T) {
	cases := []patternCase{
		{value: "2024-01-02T03:04:05Z", schema: true, api: true},
		{value: "2024-01-02T03:04:05.123456789+05:30", schema: true, api: true},
		{value: "0001-01-01T00:00:00Z", schema: true, api: true}, // the bounds
		{value: "9999-12-31T23:59:59.999999999Z", schema: true, api: true},
		{value: "0000-12-31T23:59:59.999999999Z", schema: false, api: false}, // one past
		{value: "0000-01-01T00:00:00Z", schema: false, api: false},
		{value: "0009-01-01T00:00:00Z", schema: true, api: true},
		{value: "0010-01-01T00:00:00Z", schema: true, api: true},
		{value: "0100-01-01T00:00:00Z", schema: true, api: true},
		{value: "10000-01-01T00:00:00Z", schema: false, api: false},
		{value: "2024-00-01T00:00:00Z", schema: false, api: false},
		{value: "2024-13-01T00:00:00Z", schema: false, api: false},
		{value: "2024-01-00T00:00:00Z", schema: false, api: false},
		{value: "2024-01-31T00:00:00Z", schema: true, api: true},
		{value: "2024-01-32T00:00:00Z", schema: false, api: false},
		{value: "2024-04-30T00:00:00Z", schema: true, api: true},
		{value: "2024-04-31T00:00:00Z", schema: false, api: false},
		{value: "2024-12-31T00:00:00Z", schema: true, api: true},
		{value: "2024-02-29T00:00:00Z", schema: true, api: true},
		{value: "2024-02-30T00:00:00Z", schema: false, api: false},
		{value: "2023-02-29T00:00:00Z", schema: true, api: false,
			why: "not a leap year: format date-time (RFC 3339 §5.7) says it, a pattern would need the leap-year rule"},
		{value: "2024-01-01T23:59:59Z", schema: true, api: true},
		{value: "2024-01-01T24:00:00Z", schema: false, api: false},
		{value: "2024-01-01T23:60:00Z", schema: false, api: false},
		{value: "2024-01-01T23:59:60Z", schema: false, api: false},
		{value: "2024-01-01T00:00:00+23:59", schema: true, api: true},
		{value: "2024-01-01T00:00:00-23:59", schema: true, api: true},
		{value: "2024-01-01T00:00:00-00:00", schema: true, api: true},
		// Go takes offsets to 24:60; RFC 3339 §5.6 stops at 23:59, and
		// the document offers no more than the API takes.
		{value: "2024-01-01T00:00:00+24:00", schema: false, api: true},
		{value: "2024-01-01T00:00:00+00:60", schema: false, api: true},
		// Go also takes a one-digit hour (brk50b); the API refuses it
		// and offsets past 23:59 after protojson, in a parameter
		// (DecodeQuery) and a body (badMask) alike.
		{value: "2024-01-01T3:04:05Z", schema: false, api: true},
		{value: "2024-01-01T03:4:05Z", schema: false, api: false},
		{value: "2024-01-01T03:04:5Z", schema: false, api: false},
		{value: "2024-01-01T00:00:00+99:00", schema: false, api: false},
		{value: "0001-01-01T00:00:00-01:00", schema: true, api: true},
		{value: "0001-01-01T01:00:00+01:00", schema: true, api: true},
		{value: "0001-01-01T00:59:59+01:00", schema: true, api: false,
			why: "the offset moves it before 0001-01-01T00:00:00Z; named in docs/reference/actions.md"},
		{value: "9999-12-31T22:59:59-01:00", schema: true, api: true},
		{value: "9999-12-31T23:00:00-01:00", schema: true, api: false,
			why: "the offset moves it past 9999-12-31T23:59:59Z; named in docs/reference/actions.md"},
		{value: "2024-01-01T00:00:00.Z", schema: false, api: false},
		{value: "2024-01-01T00:00:00.1234567890Z", schema: false, api: false},
		{value: "2024-01-01t00:00:00z", schema: false, api: false},
		{value: "2024-01-01T00:00:00", schema: false, api: false},
		{value: "2024-01-01", schema: false, api: false},
	}
	checkPattern(t, timestampPattern, &timestamppb.Timestamp{}, cases)
	// What protojson takes and the pattern refuses, the API refuses
	// after protojson: in a body only when mayHoldBadTimestamp lets the
	// body be walked.
	for _, tc := range cases {
		if tc.api && !tc.schema && !mayHoldBadTimestamp([]byte(`{"ts":"`+tc.value+`"}`)) {
			t.Errorf("%q: protojson takes it, the pattern refuses it, and mayHoldBadTimestamp does not see it", tc.value)
		}
	}
}
