package meteor

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// WordNetEnv is the environment variable that names the WordNet directory.
const WordNetEnv = "IMGCAP_WORDNET_DIR"

// DefaultWordNetDir is where Debian's wordnet-base package installs WordNet.
const DefaultWordNetDir = "/usr/share/wordnet"

// ErrNoWordNet reports that the WordNet files needed by METEOR's synonym
// module were not found.
var ErrNoWordNet = errors.New("WordNet not found")

// WordNetDir returns the WordNet directory: $IMGCAP_WORDNET_DIR if set, else
// /usr/share/wordnet. It does not check that the directory exists.
func WordNetDir() string {
	if d := os.Getenv(WordNetEnv); d != "" {
		return d
	}
	return DefaultWordNetDir
}

// WordNet is the synonym data METEOR's synonym module uses: for each lemma
// the set of synset offsets over all parts of speech (what METEOR's
// english.synsets holds, built from WordNet's index), and the inflection
// exceptions (noun.exc, verb.exc, adj.exc, adv.exc) mapping a form to its bases.
type WordNet struct {
	synsets    map[string][]int32
	exceptions map[string][]string
}

var wordNetFiles = []string{"index.noun", "index.verb", "index.adj", "index.adv",
	"noun.exc", "verb.exc", "adj.exc", "adv.exc"}

// LoadWordNet reads WordNet 3.0 database files (index.{noun,verb,adj,adv}
// and {noun,verb,adj,adv}.exc) from dir.
func LoadWordNet(dir string) (*WordNet, error) {
	for _, f := range wordNetFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%w: %s is missing (install Debian's wordnet-base, or set %s to a WordNet 3.0 dict directory)",
					ErrNoWordNet, filepath.Join(dir, f), WordNetEnv)
			}
			return nil, fmt.Errorf("%w: %v", ErrNoWordNet, err)
		}
	}
	wn := &WordNet{synsets: make(map[string][]int32, 160000), exceptions: make(map[string][]string, 6000)}
	for _, f := range wordNetFiles[:4] {
		if err := wn.readIndex(filepath.Join(dir, f)); err != nil {
			return nil, err
		}
	}
	for _, f := range wordNetFiles[4:] {
		if err := wn.readExceptions(filepath.Join(dir, f)); err != nil {
			return nil, err
		}
	}
	for w, s := range wn.synsets {
		slices.Sort(s)
		wn.synsets[w] = slices.Compact(s)
	}
	return wn, nil
}

// readIndex reads "lemma pos synset_cnt p_cnt [ptr...] sense_cnt tagsense_cnt offset..." lines.
func (wn *WordNet) readIndex(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if s == "" || s[0] == ' ' { // license header lines start with spaces
			continue
		}
		fields := strings.Fields(s)
		if len(fields) < 6 {
			return fmt.Errorf("%s:%d: malformed index line", path, line)
		}
		n, err := strconv.Atoi(fields[2])
		if err != nil || n < 1 || n > len(fields)-4 {
			return fmt.Errorf("%s:%d: bad synset count %q", path, line, fields[2])
		}
		lemma := fields[0]
		for _, off := range fields[len(fields)-n:] {
			v, err := strconv.ParseInt(off, 10, 32)
			if err != nil {
				return fmt.Errorf("%s:%d: bad synset offset %q", path, line, off)
			}
			wn.synsets[lemma] = append(wn.synsets[lemma], int32(v))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}

// readExceptions reads "inflected base [base...]" lines.
func (wn *WordNet) readExceptions(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, s := range strings.Split(string(data), "\n") {
		fields := strings.Fields(s)
		if len(fields) < 2 {
			continue
		}
		wn.exceptions[fields[0]] = append(wn.exceptions[fields[0]], fields[1:]...)
	}
	return nil
}

// Synsets returns the synset offsets of a word as METEOR's synonym module
// sees them: the word's own synsets plus those of its base forms (from the
// exception lists, or else from WordNet's suffix-stripping morphology).
// Offsets of different parts of speech are not distinguished, as in METEOR.
func (wn *WordNet) Synsets(word string) []int32 {
	own := wn.synsets[word]
	var base []int32
	if bases, ok := wn.exceptions[word]; ok {
		for _, b := range bases {
			base = append(base, wn.synsets[b]...)
		}
	} else if m := wn.morph(word); m != "" {
		base = wn.synsets[m]
	}
	if len(base) == 0 {
		return own
	}
	out := append(slices.Clone(own), base...)
	slices.Sort(out)
	return slices.Compact(out)
}

// morphSuffixes are WordNet's detachment rules (noun, verb, adjective), in
// the order METEOR's SynonymDictionary tries them.
var morphSuffixes = [][2]string{
	{"s", ""}, {"ses", "s"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"},
	{"men", "man"}, {"ies", "y"},
	{"s", ""}, {"ies", "y"}, {"es", "e"}, {"es", ""}, {"ed", "e"}, {"ed", ""}, {"ing", "e"}, {"ing", ""},
	{"er", ""}, {"est", ""}, {"er", "e"}, {"est", "e"},
}

// morph returns the first base form of word, obtained by one suffix rule,
// that is a WordNet lemma; a word ending in "ss" or of at most 2 characters
// is its own base; "" if none.
func (wn *WordNet) morph(word string) string {
	if strings.HasSuffix(word, "ss") || len([]rune(word)) <= 2 {
		return word
	}
	for _, r := range morphSuffixes {
		if strings.HasSuffix(word, r[0]) {
			cand := word[:len(word)-len(r[0])] + r[1]
			if _, ok := wn.synsets[cand]; ok {
				return cand
			}
		}
	}
	return ""
}

var (
	defaultWordNetOnce sync.Once
	defaultWordNet     *WordNet
	defaultWordNetErr  error
)

// DefaultWordNet loads (once) the WordNet found by WordNetDir.
func DefaultWordNet() (*WordNet, error) {
	defaultWordNetOnce.Do(func() {
		defaultWordNet, defaultWordNetErr = LoadWordNet(WordNetDir())
	})
	return defaultWordNet, defaultWordNetErr
}
