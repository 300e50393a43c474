package clients

import (
	"strings"
	"unicode"

	"github.com/mtibben/confusables"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// NameKey folds a client name for comparing names as a user reads them:
// compatibility forms mapped (NFKC: fullwidth letters, ligatures), case
// folded, lower-case Cyrillic and Greek letters drawn like Latin ones mapped
// to them (latinLookAlike), then Unicode TS #39's skeleton (confusables.Skeleton: every character drawn
// like another becomes that one — Cyrillic, Greek, Armenian and Latin
// look-alikes of Latin letters, I/l/1/|, O/0, "m" as "rn"), case folded,
// the skeleton taken again of the folded string (a lower-case letter can be
// a look-alike its capital was not) and folded again, everything but
// letters and digits dropped (spaces, punctuation, and the combining marks
// the skeleton's NFD separates: "Zoë" is "Zoe"), and i read as l (the
// dotless ı's skeleton is i, and "Ciaude" reads as "Claude"). So "Chat
// GPT", "chatgpt", "ＣｈａｔＧＰＴ", "СhatGPT" with a Cyrillic С,
// "ChɑtGPT" with a Latin alpha, "Lօcal" with an Armenian օ and "CIaude"
// with a capital I are the names "ChatGPT", "Local" and "Claude". The key
// only compares a name with the static clients' names (ByName): folding
// too much refuses a few more names that look like an operator's app,
// never lets one through. The skeleton is the confusables data the
// library carries (Unicode 13.0); the consent page marks every
// self-registered client as unverified whatever its name.
func NameKey(name string) string {
	fold := cases.Fold()
	s := strings.Map(latinLookAlike, fold.String(norm.NFKC.String(name)))
	s = fold.String(confusables.Skeleton(s))
	s = fold.String(confusables.Skeleton(s))
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if r == 'i' {
				r = 'l'
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// latinLookAlike maps a lower-case Cyrillic or Greek letter drawn like a
// Latin letter in lower case (т, м, н, ε, τ, η, μ: their capitals Т, М, Н,
// Ε, Τ, Η, Μ are) to that letter, before the skeleton: TS #39's data maps
// them to small capitals or other signs (т to ᴛ, ε to ꞓ), so "Local тest
// client" and "Claudε" kept keys of their own once folded, where the
// reader sees "Local test client" and "Claude" (review4).
func latinLookAlike(r rune) rune {
	if l, ok := lookAlike[r]; ok {
		return l
	}
	return r
}

var lookAlike = map[rune]rune{
	// Cyrillic
	'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'e', 'з': '3', 'к': 'k', 'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p',
	'с': 'c', 'т': 't', 'у': 'y', 'х': 'x', 'ѕ': 's', 'і': 'l', 'ї': 'l', 'ј': 'j', 'һ': 'h', 'ԁ': 'd',
	'ԛ': 'q', 'ԝ': 'w', 'ь': 'b', 'ӏ': 'l', 'ү': 'y',
	// Greek
	'α': 'a', 'β': 'b', 'ε': 'e', 'ζ': 'z', 'η': 'h', 'ι': 'l', 'κ': 'k', 'μ': 'm', 'ν': 'v', 'ο': 'o',
	'ρ': 'p', 'τ': 't', 'υ': 'y', 'χ': 'x', 'ϲ': 'c', 'ϳ': 'j',
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
