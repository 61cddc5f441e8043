package config

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Why this file exists: BurntSushi/toml v1.6.0 keeps each key's position in
// MetaData privately. The only public way to get it is to make the decoder
// fail on that key (see lineProbe), and every such failure copies and splits
// the whole document: a 1 MiB policy with a thousand rules took seconds.
//
// So keyLines re-scans the document once and records where each key starts.
// It only follows the structure (tables, keys, strings, arrays, inline
// tables); it never decides what is valid TOML, because it only runs on text
// the library has already accepted. Its result is used only if its key list
// equals MetaData.Keys() exactly; otherwise the parser falls back to probes.
// FuzzParse checks that both agree.

// keyLines returns the line of every key of src (a document the TOML library
// decoded without error), keyed by toml.Key.String(), or nil if its view of
// the document differs from want (MetaData.Keys()).
func keyLines(src string, want []toml.Key) map[string]int {
	sc := &keyScanner{src: src}
	if !sc.document() || len(sc.keys) != len(want) {
		return nil
	}
	nl := newlines(src)
	lines := make(map[string]int, len(want))
	for i, k := range sc.keys {
		if !slices.Equal(k, want[i]) {
			return nil
		}
		// The library keeps the last position of a repeated key ([[a]]).
		lines[k.String()] = 1 + sort.SearchInts(nl, sc.offs[i])
	}
	return lines
}

// newlines returns the offsets of all '\n' in s.
func newlines(s string) []int {
	var nl []int
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			nl = append(nl, i)
		}
	}
	return nl
}

type keyScanner struct {
	src  string
	i    int
	keys []toml.Key
	offs []int // byte offset where each key starts
}

func (sc *keyScanner) peek() byte {
	if sc.i < len(sc.src) {
		return sc.src[sc.i]
	}
	return 0
}

func (sc *keyScanner) add(k toml.Key, off int) {
	sc.keys = append(sc.keys, slices.Clone(k))
	sc.offs = append(sc.offs, off)
}

// blank skips spaces and tabs, and with nl also newlines and comments.
func (sc *keyScanner) blank(nl bool) {
	for sc.i < len(sc.src) {
		switch c := sc.src[sc.i]; {
		case c == ' ' || c == '\t':
			sc.i++
		case nl && (c == '\n' || c == '\r'):
			sc.i++
		case nl && c == '#':
			sc.comment()
		default:
			return
		}
	}
}

func (sc *keyScanner) comment() {
	if j := strings.IndexByte(sc.src[sc.i:], '\n'); j >= 0 {
		sc.i += j
	} else {
		sc.i = len(sc.src)
	}
}

func (sc *keyScanner) document() bool {
	sc.i = len(sc.src) - len(strings.TrimPrefix(sc.src, "\uFEFF")) // the library skips a BOM
	var table toml.Key
	for {
		sc.blank(true)
		if sc.i >= len(sc.src) {
			return true
		}
		if sc.peek() == '[' { // [table] or [[array.of.tables]]
			off := sc.i
			sc.i++
			array := sc.peek() == '['
			if array {
				sc.i++
			}
			k, ok := sc.key()
			if !ok || sc.peek() != ']' {
				return false
			}
			sc.i++
			if array {
				if sc.peek() != ']' {
					return false
				}
				sc.i++
			}
			table = k
			sc.add(k, off)
			continue
		}
		if !sc.keyValue(table, false) {
			return false
		}
	}
}

// keyValue scans `a.b = value` inside the table at prefix, or inside an
// inline table at prefix. Its position is the library's: in an inline table
// where the key starts, elsewhere where the value token ends, which differs
// only for multi-line strings (the line of their closing quotes).
func (sc *keyScanner) keyValue(prefix toml.Key, inline bool) bool {
	off := sc.i
	k, ok := sc.key()
	if !ok || sc.peek() != '=' {
		return false
	}
	sc.i++
	full := append(slices.Clone(prefix), k...)
	n := len(sc.keys)
	sc.add(full, off)
	sc.blank(false)
	if c := sc.peek(); !inline && (c == '"' || c == '\'') {
		if !sc.skipString() {
			return false
		}
		sc.offs[n] = sc.i - 1
		return true
	}
	return sc.value(full)
}

// key scans a dotted key and the blanks after it.
func (sc *keyScanner) key() (toml.Key, bool) {
	var k toml.Key
	for {
		sc.blank(false)
		part, ok := sc.keyPart()
		if !ok {
			return nil, false
		}
		k = append(k, part)
		sc.blank(false)
		if sc.peek() != '.' {
			return k, true
		}
		sc.i++
	}
}

func (sc *keyScanner) keyPart() (string, bool) {
	switch sc.peek() {
	case '"':
		return sc.basicString()
	case '\'':
		j := strings.IndexByte(sc.src[sc.i+1:], '\'')
		if j < 0 {
			return "", false
		}
		s := sc.src[sc.i+1 : sc.i+1+j]
		sc.i += j + 2
		return s, true
	}
	start := sc.i
	for sc.i < len(sc.src) && isBareKeyByte(sc.src[sc.i]) {
		sc.i++
	}
	return sc.src[start:sc.i], sc.i > start
}

func isBareKeyByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// basicString scans a one-line "..." string and returns its decoded value.
func (sc *keyScanner) basicString() (string, bool) {
	var b strings.Builder
	for sc.i++; sc.i < len(sc.src); {
		c := sc.src[sc.i]
		switch {
		case c == '"':
			sc.i++
			return b.String(), true
		case c == '\n':
			return "", false
		case c != '\\':
			b.WriteByte(c)
			sc.i++
			continue
		}
		if sc.i+1 >= len(sc.src) {
			return "", false
		}
		esc := sc.src[sc.i+1]
		sc.i += 2
		if r, ok := map[byte]rune{'b': '\b', 't': '\t', 'n': '\n', 'f': '\f', 'r': '\r', 'e': 0x1b, '"': '"', '\\': '\\'}[esc]; ok {
			b.WriteRune(r)
			continue
		}
		n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[esc]
		if n == 0 || sc.i+n > len(sc.src) {
			return "", false
		}
		v, err := strconv.ParseUint(sc.src[sc.i:sc.i+n], 16, 32)
		if err != nil || !utf8.ValidRune(rune(v)) {
			return "", false
		}
		b.WriteRune(rune(v))
		sc.i += n
	}
	return "", false
}

// value skips one value; inline tables inside it add their keys under key,
// as the library does (also for inline tables inside arrays).
func (sc *keyScanner) value(key toml.Key) bool {
	switch sc.peek() {
	case '"', '\'':
		return sc.skipString()
	case '[':
		sc.i++
		for {
			sc.blank(true)
			switch sc.peek() {
			case ']':
				sc.i++
				return true
			case ',':
				sc.i++
				continue
			case 0:
				return false
			}
			if !sc.value(key) {
				return false
			}
		}
	case '{':
		sc.i++
		for {
			sc.blank(true) // TOML 1.1 allows newlines in inline tables
			switch sc.peek() {
			case '}':
				sc.i++
				return true
			case ',':
				sc.i++
				continue
			case 0:
				return false
			}
			if !sc.keyValue(key, true) {
				return false
			}
		}
	}
	// Number, boolean or date/time (which may contain a space): up to the
	// next delimiter.
	start := sc.i
	for sc.i < len(sc.src) && !strings.ContainsRune(",]}#\r\n", rune(sc.src[sc.i])) {
		sc.i++
	}
	return sc.i > start
}

// skipString skips a string value of any of the four kinds.
func (sc *keyScanner) skipString() bool {
	q := sc.src[sc.i]
	if strings.HasPrefix(sc.src[sc.i:], strings.Repeat(string(q), 3)) {
		// Multi-line: ends at the last quote of the first run of three or
		// more unescaped quotes (the content may end in up to two quotes).
		for sc.i += 3; sc.i < len(sc.src); sc.i++ {
			switch sc.src[sc.i] {
			case '\\':
				if q == '"' {
					sc.i++
				}
			case q:
				run := 0
				for sc.i < len(sc.src) && sc.src[sc.i] == q {
					run++
					sc.i++
				}
				if run >= 3 {
					return true
				}
				sc.i--
			}
		}
		return false
	}
	if q == '"' {
		_, ok := sc.basicString()
		return ok
	}
	j := strings.IndexByte(sc.src[sc.i+1:], '\'')
	if j < 0 {
		return false
	}
	sc.i += j + 2
	return true
}
