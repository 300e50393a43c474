package clients

import (
	"strings"
	"unicode"

	"github.com/mtibben/confusables"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// NameKey folds a client name for comparing names as a user reads them:
// compatibility forms mapped (NFKC: fullwidth letters, ligatures),
// lower-case Cyrillic and Greek letters drawn like Latin ones mapped to
// them (latinLookAlike; capitals are left to the skeleton, which draws Η
// as H where η is n), then Unicode TS #39's skeleton (confusables.Skeleton: every character drawn
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
	s := strings.Map(latinLookAlike, norm.NFKC.String(name))
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

// latinLookAlike maps the lower-case Cyrillic and Greek letters that TS
// #39's data leaves on a sign of their own (т and τ to ᴛ, ε to ꞓ, м to ʍ,
// н to ʜ, к and κ to ĸ; μ, ζ, χ to themselves) to the Latin letter they
// or their capitals are drawn like, before the skeleton: without it "Local
// тest client" and "Claudε" kept keys of their own, where the reader sees
// "Local test client" and "Claude" (review4). Letters the skeleton maps to
// a Latin letter itself are not here: mapping them first would pick one
// reading where the skeleton knows the drawn one (η is drawn n, υ u; a
// table saying h and y let "Claυde" through, review5).
func latinLookAlike(r rune) rune {
	if l, ok := lookAlike[r]; ok {
		return l
	}
	return r
}

var lookAlike = map[rune]rune{
	// Cyrillic
	'в': 'b', 'з': '3', 'к': 'k', 'м': 'm', 'н': 'h', 'т': 't', 'ь': 'b',
	// Greek
	'ε': 'e', 'ζ': 'z', 'κ': 'k', 'μ': 'm', 'τ': 't', 'χ': 'x',
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
