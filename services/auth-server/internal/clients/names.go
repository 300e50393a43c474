package clients

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// NameKey folds a client name for comparing names as a user reads them:
// compatibility forms mapped (NFKC: fullwidth letters, ligatures), case
// folded, everything but letters and digits dropped, and letters that look
// alike folded to one (Cyrillic and Greek letters drawn like Latin ones,
// I/l/1 and O/0, "rn" for "m", after Unicode TS #39's confusables) — "Chat
// GPT", "chatgpt", "ＣｈａｔＧＰＴ", "СhatGPT" with a Cyrillic С and "CIaude"
// with a capital I are the names "ChatGPT" and "Claude". The key only
// compares a name with the static clients' names (ByName): folding too much
// refuses a few more names that look like an operator's app, never lets one
// through. Other scripts' look-alikes that are not in lookAlike remain; the
// consent page marks every self-registered client as unverified for that
// reason too.
func NameKey(name string) string {
	var b strings.Builder
	for _, r := range norm.NFKC.String(name) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			r = unicode.ToLower(r)
			if l, ok := lookAlike[r]; ok {
				r = l
			}
			b.WriteRune(r)
		}
	}
	return strings.ReplaceAll(b.String(), "rn", "m")
}

// lookAlike maps a lower-cased letter or digit to the Latin letter it is
// drawn like (their lower or upper case forms): Cyrillic and Greek
// homoglyphs, the dotless i, and the digits and letters read as l or o.
var lookAlike = map[rune]rune{
	// Cyrillic
	'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'e', 'з': '3', 'к': 'k', 'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p',
	'с': 'c', 'т': 't', 'у': 'y', 'х': 'x', 'ѕ': 's', 'і': 'l', 'ї': 'l', 'ј': 'j', 'һ': 'h', 'ԁ': 'd',
	'ԛ': 'q', 'ԝ': 'w', 'ь': 'b', 'ӏ': 'l', 'ү': 'y', 'ɡ': 'g',
	// Greek
	'α': 'a', 'β': 'b', 'ε': 'e', 'ζ': 'z', 'η': 'h', 'ι': 'l', 'κ': 'k', 'μ': 'm', 'ν': 'v', 'ο': 'o',
	'ρ': 'p', 'τ': 't', 'υ': 'y', 'χ': 'x', 'ϲ': 'c', 'ϳ': 'j',
	// Latin and digits
	'ı': 'l', 'i': 'l', '1': 'l', '0': 'o',
}

// ByName returns a static client whose name is name as NameKey compares
// names. A name without letters or digits matches none, as does every
// name on a nil registry.
func (s *Static) ByName(name string) (*Client, bool) {
	key := NameKey(name)
	if s == nil || key == "" {
		return nil, false
	}
	for _, c := range *s.byID.Load() {
		if NameKey(c.Name) == key {
			return c, true
		}
	}
	return nil, false
}

// HasHiddenCharacters reports whether name holds characters a reader does
// not see as text: control characters, and Unicode's bidirectional
// controls (U+202E RIGHT-TO-LEFT OVERRIDE shows "ppA rotarepO" as
// "Operator App", which NameKey cannot see).
func HasHiddenCharacters(name string) bool {
	return strings.IndexFunc(name, hidden) >= 0
}

// DisplayName is name without the characters HasHiddenCharacters finds,
// for showing a name stored before CheckNameAndURI refused them.
func DisplayName(name string) string {
	if !HasHiddenCharacters(name) {
		return name
	}
	return strings.Map(func(r rune) rune {
		if hidden(r) {
			return -1
		}
		return r
	}, name)
}

func hidden(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }
