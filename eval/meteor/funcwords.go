package meteor

import (
	"strings"
	"unicode"
)

// FunctionWords is imgcap's own list of English function words: the closed
// word classes that carry grammar rather than content. It was composed for
// imgcap from standard grammatical categories and is NOT the function-word
// list distributed with METEOR 1.5, so weights (and scores) differ from the
// official METEOR; this is one more reason the metric is reported as
// "METEOR (no paraphrase)".
//
// The scorer weights matches and lengths of function words by 1-Delta and
// of content words by Delta. Entries are lower case (words are lower-cased
// before lookup); a word that belongs to several classes ("that", "for",
// "as") is listed once, under its first class. Deliberately left out:
// numerals ("one", "two": counts are content in a caption), and frequent
// content words that are not closed-class. Tokens made only of punctuation
// or symbols count as function tokens by rule (see isSymbolToken), so they
// need no entries here.
var FunctionWords = []string{
	// Articles.
	"a", "an", "the",
	// Demonstratives.
	"this", "that", "these", "those",
	// Possessive determiners.
	"my", "your", "his", "her", "its", "our", "their",
	// Quantifiers and other determiners.
	"all", "another", "any", "both", "each", "either", "enough", "every", "few", "less",
	"many", "more", "most", "much", "neither", "no", "none", "other", "several", "some",
	"such",
	// Personal pronouns (subject and object forms).
	"i", "me", "you", "he", "him", "she", "it", "we", "us", "they", "them",
	// Possessive pronouns.
	"mine", "yours", "hers", "ours", "theirs",
	// Reflexive pronouns.
	"myself", "yourself", "himself", "herself", "itself", "ourselves", "yourselves",
	"themselves",
	// Indefinite pronouns.
	"anybody", "anyone", "anything", "everybody", "everyone", "everything", "nobody",
	"nothing", "somebody", "someone", "something",
	// Interrogatives and relatives.
	"what", "which", "who", "whom", "whose", "whatever", "whichever", "whoever", "where",
	"when", "why", "how",
	// Prepositions (including those that also serve as verb particles: up,
	// down, out, off, over, ...).
	"about", "above", "across", "after", "against", "along", "alongside", "amid", "among",
	"around", "as", "at", "atop", "before", "behind", "below", "beneath", "beside",
	"besides", "between", "beyond", "by", "despite", "down", "during", "except", "for",
	"from", "in", "inside", "into", "like", "near", "of", "off", "on", "onto", "opposite",
	"out", "outside", "over", "past", "per", "since", "through", "throughout", "till", "to",
	"toward", "towards", "under", "underneath", "unlike", "until", "up", "upon", "via",
	"with", "within", "without",
	// Coordinating conjunctions.
	"and", "but", "nor", "or", "so", "yet",
	// Subordinating conjunctions.
	"although", "because", "if", "though", "unless", "whereas", "whether", "while", "than",
	// Auxiliary verbs: be, have, do.
	"be", "am", "is", "are", "was", "were", "been", "being",
	"have", "has", "had", "having",
	"do", "does", "did",
	// Modal verbs.
	"can", "could", "may", "might", "must", "shall", "should", "will", "would", "ought",
	// Negation, existential "there", and common degree/focus particles.
	"not", "there", "also", "just", "too", "very", "then",
	// Clitics, whole ("'s", "n't") and as Normalize leaves them ("it's" ->
	// "it ' s", "isn't" -> "isn 't", "we're" -> "we ' re").
	"'s", "'re", "'ve", "'ll", "'d", "'m", "n't", "'t",
	"s", "re", "ve", "ll", "d", "m",
	// Penn Treebank bracket escapes, which the PTB tokenizer emits for brackets.
	"-lrb-", "-rrb-", "-lsb-", "-rsb-", "-lcb-", "-rcb-",
}

// isSymbolToken reports whether w is non-empty and has no letter and no
// digit: punctuation and symbol tokens (",", "...", "$", "!!") are treated
// as function tokens whatever the function-word list says.
func isSymbolToken(w string) bool {
	if w == "" {
		return false
	}
	return !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) })
}
