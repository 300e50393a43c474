// Package jsontest makes random JSON-shaped Go values for tests that check
// a decoder against encoding/json: strings of what JSON escapes or a
// scanner may trip on, numbers of every size, nested arrays and objects.
// It is used by tests only.
package jsontest

import (
	"math"
	"math/rand/v2"
)

// Pieces are the strings Gen.String concatenates: what JSON escapes
// (quotes, backslashes, control bytes, <>&, U+2028/2029), bytes that are
// not UTF-8, a character outside the BMP, JSON's own punctuation.
var Pieces = []string{"a", "Zé", "\"", "\\", "\n", "\x00", "\x1f", "<", ">", "&", "\u2028", "\u2029", "\xff", "\xc3", "😀", "{", "}", "[", "]", " ", "/"}

// Gen draws values from rng. Pieces are the strings String concatenates
// (nil: Pieces); a test adds the names its format uses ("session", "sub").
type Gen struct {
	Rand   *rand.Rand
	Pieces []string
}

// String is zero to five pieces.
func (g Gen) String() string {
	p := g.Pieces
	if p == nil {
		p = Pieces
	}
	s := ""
	for range g.Rand.IntN(6) {
		s += p[g.Rand.IntN(len(p))]
	}
	return s
}

// List is nil, an empty non-nil list or one to three Strings, so that a
// decoder is checked on null, [] and filled arrays alike.
func (g Gen) List() []string {
	switch g.Rand.IntN(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	l := make([]string, 1+g.Rand.IntN(3))
	for i := range l {
		l[i] = g.String()
	}
	return l
}

// Value is a value of any JSON kind as encoding/json decodes into any
// (nil, bool, float64, string, []any, map[string]any), nested no deeper
// than depth 3.
func (g Gen) Value(depth int) any {
	switch n := g.Rand.IntN(9); {
	case n == 0:
		return nil
	case n == 1:
		return g.Rand.IntN(2) == 0
	case n == 2:
		return []float64{0, -1, 1.5, 1e21, 1e-7, math.MaxInt64, -math.MaxFloat64, 123456789.123}[g.Rand.IntN(8)]
	case n == 3:
		return g.Rand.NormFloat64() * math.Pow(10, float64(g.Rand.IntN(30)-15))
	case n < 6 || depth > 2:
		return g.String()
	case n == 6:
		l := make([]any, g.Rand.IntN(3))
		for i := range l {
			l[i] = g.Value(depth + 1)
		}
		return l
	default:
		m := map[string]any{}
		for range g.Rand.IntN(4) {
			m[g.String()] = g.Value(depth + 1)
		}
		return m
	}
}
