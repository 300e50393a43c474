package clients

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// NameKey folds a client name for comparing names as a user reads them:
// compatibility forms mapped (NFKC: fullwidth letters, ligatures), case
// folded, and everything but letters and digits dropped — "Chat GPT",
// "chatgpt" and "ＣｈａｔＧＰＴ" are one name. Look-alike letters of other
// scripts (a Cyrillic "С") are not folded; the consent page marks every
// self-registered client as unverified for that reason too.
func NameKey(name string) string {
	var b strings.Builder
	for _, r := range norm.NFKC.String(name) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// ByName returns a static client whose name is name as NameKey compares
// names. A name without letters or digits matches none.
func (s *Static) ByName(name string) (*Client, bool) {
	key := NameKey(name)
	if key == "" {
		return nil, false
	}
	for _, c := range *s.byID.Load() {
		if NameKey(c.Name) == key {
			return c, true
		}
	}
	return nil, false
}
