package meteor

// Stem returns the stem of a lower-case English word with the Snowball
// English stemmer ("Porter2"), the stemmer of METEOR 1.5's stem module
// (org.tartarus.snowball.ext.englishStemmer; R1 exceptions gener, commun,
// arsen; the exceptional forms skis, skies, dying, ... and the Step 1a
// invariants inning, outing, ..., succeed). It is an improved revision of
// M. F. Porter's 1980 algorithm.
func Stem(word string) string {
	if s, ok := stemException1[word]; ok {
		return s
	}
	w := []rune(word)
	if len(w) < 3 {
		return word
	}
	st := stemmer{w: w}
	st.prelude()
	st.markRegions()
	st.step1a()
	if !stemException2[string(st.w)] {
		st.step1b()
		st.step1c()
		st.step2()
		st.step3()
		st.step4()
		st.step5()
	}
	for i, r := range st.w {
		if r == 'Y' {
			st.w[i] = 'y'
		}
	}
	return string(st.w)
}

// stemException1 are whole words with a fixed stem (checked first).
var stemException1 = map[string]string{
	"skis": "ski", "skies": "sky", "dying": "die", "lying": "lie", "tying": "tie",
	"idly": "idl", "gently": "gentl", "ugly": "ugli", "early": "earli", "only": "onli",
	"singly": "singl", "sky": "sky", "news": "news", "howe": "howe", "atlas": "atlas",
	"cosmos": "cosmos", "bias": "bias", "andes": "andes",
}

// stemException2 are words left alone after Step 1a.
var stemException2 = map[string]bool{
	"inning": true, "outing": true, "canning": true, "herring": true, "earring": true,
	"proceed": true, "exceed": true, "succeed": true,
}

type stemmer struct {
	w      []rune
	p1, p2 int
}

func isVowel(r rune) bool {
	switch r {
	case 'a', 'e', 'i', 'o', 'u', 'y':
		return true
	}
	return false
}

func (s *stemmer) prelude() {
	if s.w[0] == '\'' {
		s.w = s.w[1:]
	}
	if len(s.w) > 0 && s.w[0] == 'y' {
		s.w[0] = 'Y'
	}
	for i := 1; i < len(s.w); i++ {
		if s.w[i] == 'y' && isVowel(s.w[i-1]) {
			s.w[i] = 'Y'
		}
	}
}

// afterVowelConsonant returns the position after the first non-vowel that
// follows a vowel at or after start, or len(w).
func (s *stemmer) afterVowelConsonant(start int) int {
	i := start
	for i < len(s.w) && !isVowel(s.w[i]) {
		i++
	}
	if i >= len(s.w) {
		return len(s.w)
	}
	i++
	for i < len(s.w) && isVowel(s.w[i]) {
		i++
	}
	if i >= len(s.w) {
		return len(s.w)
	}
	return i + 1
}

func (s *stemmer) markRegions() {
	s.p1, s.p2 = len(s.w), len(s.w)
	str := string(s.w)
	switch {
	case hasPrefix(str, "gener") || hasPrefix(str, "arsen"):
		s.p1 = 5
	case hasPrefix(str, "commun"):
		s.p1 = 6
	default:
		s.p1 = s.afterVowelConsonant(0)
	}
	s.p2 = s.afterVowelConsonant(s.p1)
	if s.p1 > len(s.w) {
		s.p1 = len(s.w)
	}
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// endsWith reports whether the word ends with suf.
func (s *stemmer) endsWith(suf string) bool {
	r := []rune(suf)
	if len(r) > len(s.w) {
		return false
	}
	off := len(s.w) - len(r)
	for i, c := range r {
		if s.w[off+i] != c {
			return false
		}
	}
	return true
}

// longest returns the longest of sufs that the word ends with, or "".
func (s *stemmer) longest(sufs ...string) string {
	best := ""
	for _, suf := range sufs {
		if len(suf) > len(best) && s.endsWith(suf) {
			best = suf
		}
	}
	return best
}

// replace replaces the suffix suf (which the word ends with) by rep.
func (s *stemmer) replace(suf, rep string) {
	s.w = append(s.w[:len(s.w)-len([]rune(suf))], []rune(rep)...)
}

// shortv reports whether the word ends with a short syllable at position end.
func (s *stemmer) shortv(end int) bool {
	w := s.w[:end]
	n := len(w)
	if n >= 3 && !isVowel(w[n-1]) && w[n-1] != 'w' && w[n-1] != 'x' && w[n-1] != 'Y' &&
		isVowel(w[n-2]) && !isVowel(w[n-3]) {
		return true
	}
	return n == 2 && !isVowel(w[1]) && isVowel(w[0])
}

func (s *stemmer) hasVowel(end int) bool {
	for _, r := range s.w[:end] {
		if isVowel(r) {
			return true
		}
	}
	return false
}

func (s *stemmer) step1a() {
	if suf := s.longest("'", "'s", "'s'"); suf != "" {
		s.replace(suf, "")
	}
	suf := s.longest("sses", "ied", "ies", "s", "us", "ss")
	n := len(s.w)
	switch suf {
	case "sses":
		s.replace(suf, "ss")
	case "ied", "ies":
		if n-3 >= 2 {
			s.replace(suf, "i")
		} else {
			s.replace(suf, "ie")
		}
	case "s":
		// A vowel before the letter that precedes the s.
		if n >= 2 && s.hasVowel(n-2) {
			s.replace(suf, "")
		}
	}
}

func (s *stemmer) step1b() {
	suf := s.longest("eed", "eedly", "ed", "edly", "ing", "ingly")
	switch suf {
	case "":
		return
	case "eed", "eedly":
		if len(s.w)-len(suf) >= s.p1 {
			s.replace(suf, "ee")
		}
		return
	}
	if !s.hasVowel(len(s.w) - len(suf)) {
		return
	}
	s.replace(suf, "")
	switch s.longest("at", "bl", "iz", "bb", "dd", "ff", "gg", "mm", "nn", "pp", "rr", "tt") {
	case "at", "bl", "iz":
		s.w = append(s.w, 'e')
	case "bb", "dd", "ff", "gg", "mm", "nn", "pp", "rr", "tt":
		s.w = s.w[:len(s.w)-1]
	default:
		if len(s.w) == s.p1 && s.shortv(len(s.w)) {
			s.w = append(s.w, 'e')
		}
	}
}

func (s *stemmer) step1c() {
	n := len(s.w)
	if n >= 3 && (s.w[n-1] == 'y' || s.w[n-1] == 'Y') && !isVowel(s.w[n-2]) {
		s.w[n-1] = 'i'
	}
}

func (s *stemmer) inR1(suf string) bool { return len(s.w)-len([]rune(suf)) >= s.p1 }
func (s *stemmer) inR2(suf string) bool { return len(s.w)-len([]rune(suf)) >= s.p2 }

// before returns the rune before suffix suf, or 0.
func (s *stemmer) before(suf string) rune {
	i := len(s.w) - len([]rune(suf)) - 1
	if i < 0 {
		return 0
	}
	return s.w[i]
}

var step2Map = map[string]string{
	"tional": "tion", "enci": "ence", "anci": "ance", "abli": "able", "entli": "ent",
	"izer": "ize", "ization": "ize", "ational": "ate", "ation": "ate", "ator": "ate",
	"alism": "al", "aliti": "al", "alli": "al", "fulness": "ful", "ousli": "ous",
	"ousness": "ous", "iveness": "ive", "iviti": "ive", "biliti": "ble", "bli": "ble",
	"fulli": "ful", "lessli": "less",
}

var step2Sufs = []string{"tional", "enci", "anci", "abli", "entli", "izer", "ization", "ational",
	"ation", "ator", "alism", "aliti", "alli", "fulness", "ousli", "ousness", "iveness", "iviti",
	"biliti", "bli", "ogi", "fulli", "lessli", "li"}

func (s *stemmer) step2() {
	suf := s.longest(step2Sufs...)
	if suf == "" || !s.inR1(suf) {
		return
	}
	switch suf {
	case "ogi":
		if s.before(suf) == 'l' {
			s.replace(suf, "og")
		}
	case "li":
		switch s.before(suf) {
		case 'c', 'd', 'e', 'g', 'h', 'k', 'm', 'n', 'r', 't':
			s.replace(suf, "")
		}
	default:
		s.replace(suf, step2Map[suf])
	}
}

func (s *stemmer) step3() {
	suf := s.longest("tional", "ational", "alize", "icate", "iciti", "ical", "ful", "ness", "ative")
	if suf == "" || !s.inR1(suf) {
		return
	}
	switch suf {
	case "tional":
		s.replace(suf, "tion")
	case "ational":
		s.replace(suf, "ate")
	case "alize":
		s.replace(suf, "al")
	case "icate", "iciti", "ical":
		s.replace(suf, "ic")
	case "ful", "ness":
		s.replace(suf, "")
	case "ative":
		if s.inR2(suf) {
			s.replace(suf, "")
		}
	}
}

func (s *stemmer) step4() {
	suf := s.longest("al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment",
		"ent", "ism", "ate", "iti", "ous", "ive", "ize", "ion")
	if suf == "" || !s.inR2(suf) {
		return
	}
	if suf == "ion" {
		if b := s.before(suf); b == 's' || b == 't' {
			s.replace(suf, "")
		}
		return
	}
	s.replace(suf, "")
}

func (s *stemmer) step5() {
	n := len(s.w)
	if n == 0 {
		return
	}
	switch s.w[n-1] {
	case 'e':
		if n-1 >= s.p2 || n-1 >= s.p1 && !s.shortv(n-1) {
			s.w = s.w[:n-1]
		}
	case 'l':
		if n-1 >= s.p2 && n >= 2 && s.w[n-2] == 'l' {
			s.w = s.w[:n-1]
		}
	}
}
