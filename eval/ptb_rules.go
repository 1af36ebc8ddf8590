package eval

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
)

// This file holds the lexical specification of the PTB tokenizer: the macros
// and rules of Stanford CoreNLP 3.4.1's PTBLexer (the version that the COCO
// caption evaluation code runs, with its default options plus tokenizeNLs),
// re-expressed as Go regular expressions.
//
// JFlex semantics reproduced here:
//   - longest match over all rules; a tie goes to the rule listed first;
//   - a rule "head/trail" is matched as head+trail for the longest-match
//     comparison, and the token is the longest prefix of that match that
//     head matches while trail matches the rest (JFlex 1.5 general lookahead);
//   - %caseless: literal letters outside character classes match both
//     cases, character classes are case sensitive (see caseless below).
// Options in force (PTBLexer defaults): normalizeSpace, normalizeAmpersandEntity,
// normalizeCurrency, normalizeFractions, normalizeParentheses,
// normalizeOtherBrackets, latexQuotes, ptb3Ellipsis, ptb3Dashes,
// splitAssimilations, untokenizable=firstDelete; americanize,
// escapeForwardSlashAsterisk and strictTreebank3 off.

// ptbMacros are the named sub-expressions, in Go syntax. "{NAME}" inside a
// macro or rule refers to another macro and is expanded in a group.
var ptbMacros = [][2]string{
	{"SGML", `<(?:[!?][A-Za-z\-][^>\r\n]*|[A-Za-z][A-Za-z0-9_:.\-]*(?:[ ]+(?:[A-Za-z][A-Za-z0-9_:.\-]*|[A-Za-z][A-Za-z0-9_:.\-]*[ ]*=[ ]*(?:'[^']*'|"[^"]*")))*[ ]*/?|/[A-Za-z][A-Za-z0-9_:.\-]*)[ ]*>`},
	{"SPMDASH", `&(?:MD|mdash|ndash);|[\x{0096}\x{0097}\x{2013}\x{2014}\x{2015}]`},
	{"SPAMP", `&amp;`},
	{"SPPUNC", `&(?:HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);`},
	{"SPLET", `&[aeiouAEIOU](?:acute|grave|uml);`},
	{"SPACE", `[ \t\x{00A0}\x{2000}-\x{200A}\x{3000}]`},
	{"SPACES", `{SPACE}+`},
	{"NEWLINE", `\r|\r?\n|\x{2028}|\x{2029}|\x{000B}|\x{000C}|\x{0085}`},
	{"SPACENL", `{SPACE}|{NEWLINE}`},
	{"SPACENLS", `(?:{SPACENL})+`},
	{"SENTEND", `{SPACENL}(?:{SPACENL}|\p{Lu}|{SGML})`},
	{"DIGIT", `[\p{Nd}\x{07C0}-\x{07C9}]`},
	{"DATE", `{DIGIT}{1,2}[\-/]{DIGIT}{1,2}[\-/]{DIGIT}{2,4}`},
	{"NUM", `{DIGIT}+|{DIGIT}*(?:[.:,\x{00AD}\x{066B}\x{066C}]{DIGIT}+)+`},
	{"NUMBER", `[\-+]?{NUM}`},
	{"SUBSUPNUM", `[\x{207A}\x{207B}\x{208A}\x{208B}]?(?:[\x{2070}\x{00B9}\x{00B2}\x{00B3}\x{2074}-\x{2079}]+|[\x{2080}-\x{2089}]+)`},
	{"FRAC", `(?:{DIGIT}{1,4}[\- \x{00A0}])?{DIGIT}{1,4}(?:\\?/|\x{2044}){DIGIT}{1,4}`},
	{"FRAC2", `[\x{00BC}\x{00BD}\x{00BE}\x{2153}-\x{215E}]`},
	{"DOLSIGN", `[A-Z]*\$|#`},
	{"DOLSIGN2", `[\x{00A2}\x{00A3}\x{00A4}\x{00A5}\x{0080}\x{20A0}\x{20AC}\x{060B}\x{0E3F}\x{20A4}\x{FFE0}\x{FFE1}\x{FFE5}\x{FFE6}]`},
	{"LETTER", `[\p{L}\x{00AD}\x{0237}-\x{024F}\x{02C2}-\x{02C5}\x{02D2}-\x{02DF}\x{02E5}-\x{02FF}\x{0300}-\x{036F}\x{0370}-\x{037D}\x{0384}\x{0385}\x{03CF}\x{03F6}\x{03FC}-\x{03FF}\x{0483}-\x{0487}\x{04CF}\x{04F6}-\x{04FF}\x{0510}-\x{0525}\x{055A}-\x{055F}\x{0591}-\x{05BD}\x{05BF}\x{05C1}\x{05C2}\x{05C4}\x{05C5}\x{05C7}\x{0615}-\x{061A}\x{063B}-\x{063F}\x{064B}-\x{065E}\x{0670}\x{06D6}-\x{06EF}\x{06FA}-\x{06FF}\x{070F}\x{0711}\x{0730}-\x{074F}\x{0750}-\x{077F}\x{07A6}-\x{07B1}\x{07CA}-\x{07F5}\x{07FA}\x{0900}-\x{0903}\x{093C}\x{093E}-\x{094E}\x{0951}-\x{0955}\x{0962}-\x{0963}\x{0981}-\x{0983}\x{09BC}-\x{09C4}\x{09C7}\x{09C8}\x{09CB}-\x{09CD}\x{09D7}\x{09E2}\x{09E3}\x{0A01}-\x{0A03}\x{0A3C}\x{0A3E}-\x{0A4F}\x{0A81}-\x{0A83}\x{0ABC}-\x{0ACF}\x{0B82}\x{0BBE}-\x{0BC2}\x{0BC6}-\x{0BC8}\x{0BCA}-\x{0BCD}\x{0C01}-\x{0C03}\x{0C3E}-\x{0C56}\x{0D3E}-\x{0D44}\x{0D46}-\x{0D48}\x{0E30}-\x{0E3A}\x{0E47}-\x{0E4E}\x{0EB1}-\x{0EBC}\x{0EC8}-\x{0ECD}]|{SPLET}`},
	{"WORD", `(?:{LETTER})(?:{LETTER}|{DIGIT})*(?:[.!?](?:{LETTER})(?:{LETTER}|{DIGIT})*)*`},
	{"FILENAME_EXT", `bat|bmp|c|class|cgi|cpp|dll|doc|docx|exe|gif|gz|h|htm|html|jar|java|jpeg|jpg|mov|mp3|pdf|php|pl|png|ppt|ps|py|sql|tar|txt|wav|x|xml|zip`},
	{"FILENAME", `(?:{LETTER}|{DIGIT})+(?:[.](?:{LETTER}|{DIGIT})+)*[.](?:{FILENAME_EXT})`},
	{"APOS", `['\x{0092}\x{2019}]|&apos;`},
	{"APOSETCETERA", `{APOS}|[` + "`" + `\x{0091}\x{2018}\x{201B}]`},
	{"HYPHEN", `[\-_\x{058A}\x{2010}\x{2011}]`},
	{"THING", `(?:[dDoOlL](?:{APOSETCETERA})[\p{L}\p{Nd}])?[\p{L}\p{Nd}]+(?:{HYPHEN}(?:[dDoOlL](?:{APOSETCETERA})[\p{L}\p{Nd}])?[\p{L}\p{Nd}]+)*`},
	{"THINGA", `[A-Z]+(?:(?:[+&]|{SPAMP})[A-Z]+)+`},
	{"THING3", `[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}`},
	{"ACRO", `[A-Za-z](?:\.[A-Za-z])*|(?:Canada|Sino|Korean|EU|Japan|non)-U\.S|U\.S\.-(?:U\.K|U\.S\.S\.R)`},
	{"ACRO2", `[A-Za-z](?:\.[A-Za-z])+|(?:Canada|Sino|Korean|EU|Japan|non)-U\.S|U\.S\.-(?:U\.K|U\.S\.S\.R)`},
	{"HTHING", `[A-Za-z0-9][A-Za-z0-9.,\x{00AD}]*(?:-(?:[A-Za-z0-9\x{00AD}]+|(?:{ACRO2})\.))+`},
	{"REDAUX", `(?:{APOS})(?:[msdMSD]|re|ve|ll)`},
	{"SWORD", `[A-Za-z\x{00AD}]*[A-MO-Za-mo-z]\x{00AD}*`},
	{"SREDAUX", `n(?:{APOSETCETERA})t`},
	{"APOWORD", `(?:{APOS})n(?:{APOS})?|[lLdDjJ](?:{APOS})|Dunkin(?:{APOS})|somethin(?:{APOS})|ol(?:{APOS})|(?:{APOS})em|[A-HJ-XZn](?:{APOSETCETERA})\p{L}{2}\p{L}*|(?:{APOS})[2-9]0s|(?:{APOS})till?|\p{L}\p{L}*[aeiouyAEIOUY](?:{APOSETCETERA})[aeiouA-Z]\p{L}*|(?:{APOS})cause|cont'd\.?|'twas|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l|O(?:{APOSETCETERA})o`},
	{"APOWORD2", `y(?:{APOS})`},
	{"FULLURL", `https?://[^ \t\n\f\r"<>|(){}]+[^ \t\n\f\r"<>|.!?(){},\-]`},
	// The class [^...,-_$] below contains the range ','..'_' exactly as in PTBLexer.flex.
	{"LIKELYURL", `(?:(?:www\.(?:[^ \t\n\f\r"<>|.!?(){},]+\.)+[a-zA-Z]{2,4})|(?:(?:[^ \t\n\f\r"` + "`" + `'<>|.!?(){},-_$]+\.)+(?:com|net|org|edu)))(?:/[^ \t\n\f\r"<>|()]+[^ \t\n\f\r"<>|.!?(){},\-])?`},
	{"EMAIL", `(?:&lt;|<)?[a-zA-Z0-9][^ \t\n\f\r"<>|()\x{00A0}{}]*@(?:[^ \t\n\f\r"<>|(){}.\x{00A0}]+\.)*(?:[^ \t\n\f\r"<>|(){}.\x{00A0}]+)(?:&gt;|>)?`},
	{"TWITTER", `@[a-zA-Z_][a-zA-Z_0-9]*|#(?:{LETTER})+`},
	{"ABMONTH", `Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec`},
	{"ABDAYS", `Mon|Tue|Tues|Wed|Thu|Thurs|Fri`},
	{"ABSTATE", `Ala|Ariz|[A]z|[A]rk|Calif|Colo|Conn|Ct|Dak|[D]el|Fla|Ga|[I]ll|Ind|Kans?|Ky|[L]a|[M]ass|Md|Mich|Minn|[M]iss|Mo|Mont|Neb|Nev|Okla|[O]re|[P]a|Penn|Tenn|[T]ex|Va|Vt|[W]ash|Wisc?|Wyo`},
	{"ABCOMP", `Inc|Cos?|Corp|Pp?t[ye]s?|Ltd|Plc|Rt|Bancorp|Bhd|Assn|Univ|Intl|Sys`},
	{"ABNUM", `tel|est|ext|sq`},
	{"ABPTIT", `Jr|Sr|Bros|(?:Ed|Ph)\.D|Blvd|Rd|Esq`},
	{"ABBREV1", `(?:{ABMONTH}|{ABDAYS}|{ABSTATE}|{ABCOMP}|{ABNUM}|{ABPTIT}|etc|al|seq|Bldg)\.`},
	{"ABTITLE", `Mr|Mrs|Ms|[M]iss|Drs?|Profs?|Sens?|Reps?|Attys?|Lt|Col|Gen|Messrs|Govs?|Adm|Rev|Maj|Sgt|Cpl|Pvt|Capt|Ste?|Ave|Pres|Lieut|Hon|Brig|Co?mdr|Pfc|Spc|Supts?|Det|Mt|Ft|Adj|Adv|Asst|Assoc|Ens|Insp|Mlle|Mme|Msgr|Sfc`},
	{"ABCOMP2", `Invt|Elec|Natl|M[ft]g|Dept`},
	{"ABBREV4", `{ABTITLE}|vs|Alex|Wm|Jos|Cie|a\.k\.a|cf|TREAS|Ph|{ACRO}|{ABCOMP2}`},
	{"ABBREV2", `(?:{ABBREV4})\.`},
	{"ACRONYM", `(?:{ACRO})\.`},
	{"ABBREV3", `(?:ca|figs?|prop|nos?|art|bldg|prop|pp|op)\.`},
	{"PHONE", `(?:\([0-9]{2,3}\)[ \x{00A0}]?|(?:\+\+?)?(?:[0-9]{2,4}[\- \x{00A0}])?[0-9]{2,4}[\- \x{00A0}])[0-9]{3,4}[\- \x{00A0}]?[0-9]{3,5}|(?:(?:\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5}`},
	{"FAKEDUCKFEET", `<<|>>`},
	{"LESSTHAN", `<|&lt;`},
	{"GREATERTHAN", `>|&gt;`},
	{"HYPHENS", `-+`},
	{"LDOTS", `\.{3,5}|(?:\.[ \x{00A0}]){2,4}\.|[\x{0085}\x{2026}]`},
	{"ASTS", `\*+|(?:\\\*){1,3}`},
	{"FNMARKS", `@+|#+|_+`},
	{"INSENTP", `[,;:\x{3001}]`},
	{"QUOTES", `{APOS}|''|[` + "`" + `\x{2018}\x{2019}\x{201A}\x{201B}\x{201C}\x{201D}\x{0091}\x{0092}\x{0093}\x{0094}\x{201E}\x{201F}\x{2039}\x{203A}\x{00AB}\x{00BB}]{1,2}`},
	{"DBLQUOT", `"|&quot;`},
	{"TBSPEC", `-(?:RRB|LRB|RCB|LCB|RSB|LSB)-|C\.D\.s|pro-|anti-|S(?:&|&amp;)P-500|S(?:&|&amp;)Ls|Cap(?:{APOS})n|c(?:{APOS})est`},
	{"TBSPEC2", `(?:{APOS})[0-9][0-9]`},
	{"SMILEY", `[<>]?[:;=][\-o*']?[()DPdpO\\{@|\[\]]`},
	// The first alternative reproduces PTBLexer.flex literally: there "\[" is an
	// escaped bracket, so it matches e.g. "^.[^x=~<>]" rather than "^.^".
	{"ASIANSMILEY", `[\^x=~<>]\.\[\^x=~<>\]|[\-\^x=~<>']_[\-\^x=~<>']|\([\-\^x=~<>'][_.]?[\-\^x=~<>']\)|\([\^x=~<>']-[\^x=~<>'` + "`" + `]\)`},
	{"MISCSYMBOL", `[+%&~\^|\\\x{00A6}\x{00A7}\x{00A8}\x{00A9}\x{00AC}\x{00AE}\x{00AF}\x{00B0}-\x{00B3}\x{00B4}-\x{00BA}\x{00D7}\x{00F7}\x{0387}\x{05BE}\x{05C0}\x{05C3}\x{05C6}\x{05F3}\x{05F4}\x{0600}-\x{0603}\x{0606}-\x{060A}\x{060C}\x{0614}\x{061B}\x{061E}\x{066A}\x{066D}\x{0703}-\x{070D}\x{07F6}\x{07F7}\x{07F8}\x{0964}\x{0965}\x{0E4F}\x{1FBD}\x{2016}\x{2017}\x{2020}-\x{2023}\x{2030}-\x{2038}\x{203B}\x{203E}-\x{2042}\x{2044}\x{207A}-\x{207F}\x{208A}-\x{208E}\x{2100}-\x{214F}\x{2190}-\x{21FF}\x{2200}-\x{2BFF}\x{3012}\x{30FB}\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF20}\x{FF3B}-\x{FF40}\x{FF5B}-\x{FF65}]`},
}

// ptbAction says what a rule does with its matched head.
type ptbAction int

const (
	actEmit        ptbAction = iota // emit the head unchanged
	actSoftHyphen                   // emit the head without soft hyphens (U+00AD)
	actSkip                         // whitespace and other ignorable text
	actNewline                      // a line break: ends the current caption
	actPush3                        // emit all but the last 3 characters (cannot -> can + not)
	actPush2                        // emit all but the last 2 characters (gonna -> gon + na)
	actSpaceNBSP                    // emit with spaces turned into U+00A0
	actDash                         // emit "--"
	actAmp                          // emit with "&amp;" turned into "&"
	actQuoteLeft                    // latex quotes, probably an opening quote
	actQuoteRight                   // latex quotes, probably a closing quote
	actFraction                     // U+00BD -> "1/2" etc.
	actCurrency                     // cents, pound, euro -> "cents", "#", "$"
	actAcronymEnd                   // acronym before a sentence start: see PTBLexer
	actEmitKeepDot                  // emit the head, then lex its final "." again
	actPhone                        // spaces -> U+00A0, parentheses -> -LRB-/-RRB-
	actLT                           // emit "<"
	actGT                           // emit ">"
	actParens                       // parentheses -> -LRB-/-RRB- (smileys)
	actLCB                          // emit -LCB-
	actRCB                          // emit -RCB-
	actLSB                          // emit -LSB-
	actRSB                          // emit -RSB-
	actLRB                          // emit -LRB-
	actRRB                          // emit -RRB-
	actHyphens                      // 3 or 4 hyphens -> "--"
	actEllipsis                     // emit "..."
)

// ptbRuleSpec is one lexical rule: head, optional trailing context, action.
type ptbRuleSpec struct {
	head, trail string
	act         ptbAction
}

// ptbRuleSpecs are the rules of PTBLexer.flex in order (the order breaks ties
// between matches of equal length).
var ptbRuleSpecs = []ptbRuleSpec{
	{`c[+][+]`, ``, actEmit},
	{`(?:c|f)#`, ``, actEmit},
	{`cannot`, ``, actPush3},
	{`'twas`, ``, actPush3},
	{`'tis`, ``, actPush2},
	{`gonna|gotta|lemme|gimme|wanna`, ``, actPush2},
	{`{SGML}`, ``, actSpaceNBSP},
	{`{SPMDASH}`, ``, actDash},
	{`{SPAMP}`, ``, actAmp},
	{`{SPPUNC}`, ``, actEmit},
	{`{WORD}`, `{REDAUX}`, actSoftHyphen},
	{`{SWORD}`, `{SREDAUX}`, actSoftHyphen},
	{`{WORD}`, ``, actSoftHyphen},
	{`{APOWORD}`, ``, actEmit},
	{`{APOWORD2}`, `\p{L}`, actEmit},
	{`{FULLURL}`, ``, actEmit},
	{`{LIKELYURL}`, ``, actEmit},
	{`{EMAIL}`, ``, actEmit},
	{`{TWITTER}`, ``, actEmit},
	{`{REDAUX}`, `[^A-Za-z]`, actQuoteRight},
	{`{SREDAUX}`, `[^A-Za-z]`, actQuoteRight},
	{`{DATE}`, ``, actEmit},
	{`{NUMBER}`, ``, actSoftHyphen},
	{`{SUBSUPNUM}`, ``, actEmit},
	{`{FRAC}`, ``, actSpaceNBSP},
	{`{FRAC2}`, ``, actFraction},
	{`{TBSPEC}`, ``, actAmp},
	{`{THING3}`, ``, actEmit},
	{`{DOLSIGN}`, ``, actEmit},
	{`{DOLSIGN2}`, ``, actCurrency},
	{`{ACRONYM}`, `(?:{SPACENLS})(?:[A]bout|[A]ccording|[A]dditionally|[A]fter|[A]n|[A]|[A]s|[A]t|[B]ut|[E]arlier|[H]e|[H]er|[H]ere|[H]owever|[I]f|[I]n|[I]t|[L]ast|[M]any|[M]ore|[M]r\.|[M]s\.|[N]ow|[O]nce|[O]ne|[O]ther|[O]ur|[S]he|[S]ince|[S]o|[S]ome|[S]uch|[T]hat|[T]he|[T]heir|[T]hen|[T]here|[T]hese|[T]hey|[T]his|[W]e|[W]hen|[W]hile|[W]hat|[Y]et|[Y]ou|{SGML})(?:{SPACENL})`, actAcronymEnd},
	{`{ABBREV3}`, `(?:{SPACENL})?\p{Nd}`, actEmit},
	{`(?:pt[eyEY]|co)\.`, `{SPACE}(?:ltd|lim)`, actEmit},
	{`{ABBREV1}`, `{SENTEND}`, actEmitKeepDot},
	{`{ABBREV1}`, `[\s\S][\s\S]`, actEmit},
	{`{ABBREV1}`, ``, actEmitKeepDot},
	{`{ABBREV2}`, ``, actEmit},
	{`{ABBREV4}`, `{SPACE}`, actEmit},
	{`{ACRO}`, `{SPACENL}`, actEmit},
	{`{TBSPEC2}`, `{SPACENL}`, actEmit},
	{`{FILENAME}`, `{SPACENL}|[.?!,]`, actEmit},
	{`(?:{WORD})\.`, `{INSENTP}`, actSoftHyphen},
	{`{PHONE}`, ``, actPhone},
	{`{DBLQUOT}`, `[A-Za-z0-9$]`, actQuoteLeft},
	{`{DBLQUOT}`, ``, actQuoteRight},
	{`\x{7f}`, ``, actSkip},
	{`{LESSTHAN}`, ``, actLT},
	{`{GREATERTHAN}`, ``, actGT},
	{`{SMILEY}`, `[^A-Za-z0-9]`, actParens},
	{`{ASIANSMILEY}`, ``, actParens},
	{`\{`, ``, actLCB},
	{`\}`, ``, actRCB},
	{`\[`, ``, actLSB},
	{`\]`, ``, actRSB},
	{`\(`, ``, actLRB},
	{`\)`, ``, actRRB},
	{`{HYPHENS}`, ``, actHyphens},
	{`{LDOTS}`, ``, actEllipsis},
	{`{FNMARKS}`, ``, actEmit},
	{`{ASTS}`, ``, actEmit},
	{`{INSENTP}`, ``, actEmit},
	{`[?!]+`, ``, actEmit},
	{`[.\x{00A1}\x{00BF}\x{037E}\x{0589}\x{061F}\x{06D4}\x{0700}-\x{0702}\x{07FA}\x{3002}]`, ``, actEmit},
	{`=`, ``, actEmit},
	{`/`, ``, actEmit},
	{`(?:{HTHING})\.`, `{INSENTP}`, actSoftHyphen},
	{`{HTHING}`, ``, actSoftHyphen},
	{`(?:{THING})\.`, `{INSENTP}`, actEmit},
	{`{THING}`, ``, actEmit},
	{`(?:{THINGA})\.`, `{INSENTP}`, actAmp},
	{`{THINGA}`, ``, actAmp},
	{`'`, `[A-Za-z][^ \t\n\r\x{00A0}]`, actQuoteLeft},
	{`{REDAUX}`, ``, actQuoteRight},
	{`{SREDAUX}`, ``, actQuoteRight},
	{`{QUOTES}`, ``, actQuoteRight},
	{`{FAKEDUCKFEET}`, ``, actEmit},
	{`{MISCSYMBOL}`, ``, actEmit},
	{`\x{0}|{SPACES}|[\x{200B}\x{200E}-\x{200F}\x{FEFF}]`, ``, actSkip},
	{`{NEWLINE}`, ``, actNewline},
	{`&nbsp;`, ``, actSkip},
	// The catch-all "." rule (untokenizable character, deleted) is applied in code.
}

// ptbRule is a compiled rule.
type ptbRule struct {
	act      ptbAction
	full     *regexp.Regexp // ^(?:head)(?:trail), leftmost-longest
	headOnly *regexp.Regexp // ^(?:head)$, only when trail != ""
	trailAll *regexp.Regexp // ^(?:trail)$, only when trail != ""
	first    firstSet       // runes that can start a match
}

// expandMacros replaces {NAME} by the macro's expansion in a non-capturing group.
// Repetition counts such as {1,4} are left alone.
func expandMacros(src string, macros map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '\\' && i+1 < len(src) {
			b.WriteByte(c)
			b.WriteByte(src[i+1])
			i++
			continue
		}
		if c == '{' {
			if j := strings.IndexByte(src[i:], '}'); j > 0 {
				name := src[i+1 : i+j]
				if m, ok := macros[name]; ok {
					b.WriteString("(?:")
					b.WriteString(m)
					b.WriteString(")")
					i += j
					continue
				}
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// caseless makes every ASCII letter outside a character class match both
// cases, as JFlex's %caseless does; character classes are left case sensitive.
func caseless(src string) string {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '\\' && i+1 < len(src):
			// Copy an escape, including \x{...} and \p{...} bodies.
			b.WriteByte(c)
			i++
			b.WriteByte(src[i])
			if (src[i] == 'x' || src[i] == 'p' || src[i] == 'P') && i+1 < len(src) && src[i+1] == '{' {
				j := strings.IndexByte(src[i:], '}')
				b.WriteString(src[i+1 : i+j+1])
				i += j
			} else if (src[i] == 'p' || src[i] == 'P') && i+1 < len(src) {
				i++
				b.WriteByte(src[i])
			}
		case inClass:
			if c == ']' {
				inClass = false
			}
			b.WriteByte(c)
		case c == '[':
			inClass = true
			b.WriteByte(c)
		case c == '(' && i+2 < len(src) && src[i+1] == '?' && src[i+2] == ':':
			b.WriteString("(?:")
			i += 2
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			lo, up := c|0x20, c&^0x20
			b.WriteByte('[')
			b.WriteByte(lo)
			b.WriteByte(up)
			b.WriteByte(']')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// compileRules builds the rule table; a bad pattern is a programming error.
func compileRules() []ptbRule {
	macros := make(map[string]string, len(ptbMacros))
	for _, m := range ptbMacros {
		// Macros may refer to earlier macros.
		macros[m[0]] = expandMacros(m[1], macros)
	}
	rules := make([]ptbRule, len(ptbRuleSpecs))
	for i, spec := range ptbRuleSpecs {
		head := caseless(expandMacros(spec.head, macros))
		r := ptbRule{act: spec.act}
		if spec.trail == "" {
			r.full = mustLongest(`^(?:` + head + `)`)
		} else {
			trail := caseless(expandMacros(spec.trail, macros))
			r.full = mustLongest(`^(?:` + head + `)(?:` + trail + `)`)
			r.headOnly = regexp.MustCompile(`^(?:` + head + `)$`)
			r.trailAll = regexp.MustCompile(`^(?:` + trail + `)$`)
		}
		re, err := syntax.Parse(r.full.String(), syntax.Perl)
		if err != nil {
			panic(err)
		}
		r.first = firstRunes(re.Simplify())
		rules[i] = r
	}
	return rules
}

// compileAbbrevWords builds the fast-path guard: a case-insensitive
// whole-word match of every letters-only word that an abbreviation rule
// (ABBREV1, ABBREV2/ABBREV4, ABBREV3, "pty./co." before Ltd) accepts
// before its period.
func compileAbbrevWords() *regexp.Regexp {
	macros := make(map[string]string, len(ptbMacros))
	for _, m := range ptbMacros {
		macros[m[0]] = expandMacros(m[1], macros)
	}
	src := expandMacros(`{ABMONTH}|{ABDAYS}|{ABSTATE}|{ABCOMP}|{ABNUM}|{ABPTIT}|etc|al|seq|Bldg|{ABBREV4}|ca|figs?|prop|nos?|art|bldg|pp|op|pt[eyEY]|co`, macros)
	return regexp.MustCompile(`(?i)^(?:` + src + `)$`)
}

func mustLongest(src string) *regexp.Regexp {
	re := regexp.MustCompile(src)
	re.Longest()
	return re
}

// firstSet is the set of runes that can begin a match, as sorted ranges.
type firstSet struct {
	any    bool      // any rune may start a match
	ranges []rune    // pairs lo, hi
	ascii  [2]uint64 // bitmap of ASCII members (derived from ranges)
}

func (f *firstSet) add(lo, hi rune) {
	f.ranges = append(f.ranges, lo, hi)
	for r := lo; r <= hi && r < 128; r++ {
		f.ascii[r>>6] |= 1 << (uint(r) & 63)
	}
}

func (f *firstSet) has(r rune) bool {
	if f.any {
		return true
	}
	if r < 128 {
		return f.ascii[r>>6]&(1<<(uint(r)&63)) != 0
	}
	for i := 0; i < len(f.ranges); i += 2 {
		if r >= f.ranges[i] && r <= f.ranges[i+1] {
			return true
		}
	}
	return false
}

// firstRunes computes the runes that can start a match of re (conservatively).
func firstRunes(re *syntax.Regexp) firstSet {
	var f firstSet
	collectFirst(re, &f)
	return f
}

// collectFirst adds re's first runes to f and reports whether re can match
// the empty string (so that what follows it in a concatenation may start too).
func collectFirst(re *syntax.Regexp, f *firstSet) (nullable bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return true
		}
		r := re.Rune[0]
		f.add(r, r)
		if re.Flags&syntax.FoldCase != 0 {
			for c := unicode.SimpleFold(r); c != r; c = unicode.SimpleFold(c) {
				f.add(c, c)
			}
		}
		return false
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			f.add(re.Rune[i], re.Rune[i+1])
		}
		return false
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		f.any = true
		return false
	case syntax.OpCapture:
		return collectFirst(re.Sub[0], f)
	case syntax.OpStar, syntax.OpQuest:
		collectFirst(re.Sub[0], f)
		return true
	case syntax.OpPlus:
		return collectFirst(re.Sub[0], f)
	case syntax.OpRepeat:
		n := collectFirst(re.Sub[0], f)
		return n || re.Min == 0
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !collectFirst(s, f) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		nullable := false
		for _, s := range re.Sub {
			if collectFirst(s, f) {
				nullable = true
			}
		}
		return nullable
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	default:
		f.any = true
		return true
	}
}
