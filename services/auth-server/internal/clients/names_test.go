package clients

import "testing"

// Names that read as a static client's name have its key: case, spacing,
// punctuation, fullwidth forms, other scripts' look-alike letters (Unicode
// TS #39 skeletons), I/l/1, O/0 and rn/m; names that read differently do
// not. brkattack registered "Lօcal test client" (Armenian օ) and "ChɑtGPT
// Apps (development)" (Latin alpha), which the hand-written table missed.
func TestNameKeyFoldsLookAlikes(t *testing.T) {
	same := map[string][]string{
		"ChatGPT": {
			"chat gpt", "ＣｈａｔＧＰＴ", "Chat-GPT.", "ChatGPT\u200b", // zero-width space
			"\u0421hatGPT",           // Cyrillic С
			"ChatG\u0420T",           // Cyrillic Р
			"C\u0397\u0391\u03a4GPT", // Greek Η, Α, Τ
		},
		"Claude": {
			"CIaude",      // capital I
			"C1aude",      // digit 1
			"Cl\u0430ude", // Cyrillic а
			"C\u0131aude", // dotless ı
			"Claud\u03b5", // Greek ε (the skeleton alone made it ꞓ)
			"Cla\u03c5de", // Greek υ, drawn u (a table reading it y let it through)
		},
		"Operator App": {"0perator App", "operator-app", "Operator A\u0440\u0440" /* Cyrillic р */},
		"Modern":       {"Modem"},
		"Local test client": {
			"L\u0585cal test client", // Armenian օ
			"Local \u0442est client", // Cyrillic т (the skeleton alone: ᴛ)
			"Local t\u03b5st client", // Greek ε
			"Local \u03c4est client", // Greek τ
			"Local test cli\u0435nt", // Cyrillic е
			"Local test clie\u03b7t", // Greek η, drawn n
		},
		"Modem": {
			"\u041code\u043c", // Cyrillic М, м
			"Mod\u03b5\u03bc", // Greek ε, μ
		},
		"Hotel": {"\u043do\u0442el", "Ho\u03c4el"}, // Cyrillic н, т; Greek τ
		"ChatGPT Apps (development)": {
			"Ch\u0251tGPT Apps (development)", // Latin ɑ
			"ChatGPT Apps (deve\u04cfopment)", // Cyrillic palochka ӏ
			"ChatGPT App\u0455 (development)", // Cyrillic ѕ
		},
	}
	for want, names := range same {
		for _, n := range names {
			if NameKey(n) != NameKey(want) {
				t.Errorf("NameKey(%q) = %q, NameKey(%q) = %q: want equal", n, NameKey(n), want, NameKey(want))
			}
		}
	}
	for _, pair := range [][2]string{
		{"ChatGPT", "Chat\u0413PT"}, // Cyrillic Г is not drawn like G
		{"ChatGPT", "ChatGTP"}, {"Claude", "Clyde"}, {"Operator App", "Operator Apps"},
	} {
		if NameKey(pair[0]) == NameKey(pair[1]) {
			t.Errorf("NameKey(%q) = NameKey(%q) = %q", pair[0], pair[1], NameKey(pair[0]))
		}
	}
}

// A name with control or bidirectional formatting characters is caught,
// and shown without them: U+202E would show "ppA rotarepO" as "Operator App".
func TestHiddenCharactersInNames(t *testing.T) {
	for _, n := range []string{"\u202eppA rotarepO", "Operator\u2066 App", "Operator\u200f App", "Notes\nhelper", "Notes\x00"} {
		if !HasHiddenCharacters(n) {
			t.Errorf("HasHiddenCharacters(%q) = false", n)
		}
	}
	for _, n := range []string{"Operator App", "ＣｈａｔＧＰＴ", "Notes – helper", "שלום", "Zoë's notes"} {
		if HasHiddenCharacters(n) || DisplayName(n) != n {
			t.Errorf("%q: hidden %v, shown as %q", n, HasHiddenCharacters(n), DisplayName(n))
		}
	}
	if got := DisplayName("\u202eppA rotarepO\u202c"); got != "ppA rotarepO" {
		t.Errorf("DisplayName = %q", got)
	}
}
