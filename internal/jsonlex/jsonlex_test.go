package jsonlex_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/gowebpki/jcs"
	"github.com/warden-sh/warden/internal/jsonlex"
)

type scanResult struct {
	End   int
	Flags jsonlex.Flags
	Kind  jsonlex.Kind
}

func scan(token string) scanResult {
	end, f, k := jsonlex.Scan([]byte(token), 0)
	if k != jsonlex.OK {
		f = 0 // flags are only promised for accepted tokens
	}
	return scanResult{end, f, k}
}

const (
	esc   = jsonlex.Escaped
	noncn = jsonlex.Escaped | jsonlex.NotCanonical
)

func TestScan(t *testing.T) {
	tests := []struct {
		name, in string
		want     scanResult
	}{
		{"empty", `""`, scanResult{2, 0, jsonlex.OK}},
		{"plain", `"abc"`, scanResult{5, 0, jsonlex.OK}},
		{"stops at the closing quote", `"a" : "b"`, scanResult{3, 0, jsonlex.OK}},
		{"long plain crosses words", `"` + strings.Repeat("x", 37) + `"`, scanResult{39, 0, jsonlex.OK}},
		{"DEL is plain", "\"\x7f\"", scanResult{3, 0, jsonlex.OK}},
		{"non-ASCII", `"é€😀"`, scanResult{11, 0, jsonlex.OK}},
		{"literal U+FFFD", "\"\xef\xbf\xbd\"", scanResult{5, 0, jsonlex.OK}},
		{"canonical short escapes", `"\"\\\b\f\n\r\t"`, scanResult{16, esc, jsonlex.OK}},
		{"canonical control escape", `"\u0000\u001f\u000b"`, scanResult{20, esc, jsonlex.OK}},
		{"slash escape", `"\/"`, scanResult{4, noncn, jsonlex.OK}},
		{"control escape with a short form", `"\u000a"`, scanResult{8, noncn, jsonlex.OK}},
		{"upper-case control escape", `"\u001F"`, scanResult{8, noncn, jsonlex.OK}},
		{"escaped letter", `"\u0041"`, scanResult{8, noncn, jsonlex.OK}},
		{"escaped DEL", `"\u007f"`, scanResult{8, noncn, jsonlex.OK}},
		{"escaped non-ASCII", `"\u00e9"`, scanResult{8, noncn, jsonlex.OK}},
		{"surrogate pair", `"\ud83d\ude00"`, scanResult{14, noncn, jsonlex.OK}},
		{"surrogate pair upper case", `"\uD83D\uDE00"`, scanResult{14, noncn, jsonlex.OK}},
		{"escaped U+FFFD", `"\ufffd"`, scanResult{8, noncn, jsonlex.OK}},
		{"escaped backslash then u", `"\\ud800"`, scanResult{9, esc, jsonlex.OK}},

		{"unterminated", `"abc`, scanResult{4, 0, jsonlex.Unterminated}},
		{"unterminated after an escaped quote", `"a\"`, scanResult{4, 0, jsonlex.Unterminated}},
		{"only the quote", `"`, scanResult{1, 0, jsonlex.Unterminated}},
		{"control", "\"a\tb\"", scanResult{2, 0, jsonlex.Control}},
		{"NUL", "\"\x00\"", scanResult{1, 0, jsonlex.Control}},
		{"control after eight plain bytes", "\"abcdefgh\x1f\"", scanResult{9, 0, jsonlex.Control}},
		{"bad escape", `"\x41"`, scanResult{2, 0, jsonlex.BadEscape}},
		{"escape at the end", `"ab\`, scanResult{4, 0, jsonlex.BadEscape}},
		{"escaped non-ASCII letter", `"\é"`, scanResult{2, 0, jsonlex.BadEscape}},
		{"short hex", `"\u12"`, scanResult{1, 0, jsonlex.BadHex}},
		{"bad hex digit", `"a\u12g4"`, scanResult{2, 0, jsonlex.BadHex}},
		{"hex at the end", `"\u123`, scanResult{1, 0, jsonlex.BadHex}},
		{"lone high", `"\ud800"`, scanResult{1, 0, jsonlex.Surrogate}},
		{"lone low", `"x\udc00"`, scanResult{2, 0, jsonlex.Surrogate}},
		{"high then letter", `"\uD800A"`, scanResult{1, 0, jsonlex.Surrogate}},
		{"high then BMP escape", `"\ud800\u0041"`, scanResult{1, 0, jsonlex.Surrogate}},
		{"high then high", `"\ud800\ud800"`, scanResult{1, 0, jsonlex.Surrogate}},
		{"low then high", `"\udc00\ud800"`, scanResult{1, 0, jsonlex.Surrogate}},
		{"high then bad hex", `"\ud800\uzzzz"`, scanResult{1, 0, jsonlex.Surrogate}},
		{"high at the end", `"\ud800`, scanResult{1, 0, jsonlex.Surrogate}},
		{"second pair bad", `"\ud83d\ude00\ud83d"`, scanResult{13, 0, jsonlex.Surrogate}},
		{"invalid byte", "\"ab\xffc\"", scanResult{3, 0, jsonlex.UTF8}},
		{"invalid byte after eight plain bytes", "\"abcdefghij\xfe\"", scanResult{11, 0, jsonlex.UTF8}},
		{"overlong", "\"\xc0\xaf\"", scanResult{1, 0, jsonlex.UTF8}},
		{"overlong three bytes", "\"\xe0\x80\xaf\"", scanResult{1, 0, jsonlex.UTF8}},
		{"encoded surrogate", "\"\xed\xa0\x80\"", scanResult{1, 0, jsonlex.UTF8}},
		{"truncated sequence", "\"\xe2\x82\"", scanResult{1, 0, jsonlex.UTF8}},
		{"truncated at the end", "\"\xe2\x82", scanResult{1, 0, jsonlex.UTF8}},
		{"above U+10FFFF", "\"\xf4\x90\x80\x80\"", scanResult{1, 0, jsonlex.UTF8}},
		{"continuation byte alone", "\"\x80\"", scanResult{1, 0, jsonlex.UTF8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, scan(tt.in)); diff != "" {
				t.Errorf("Scan(%q) (-want +got):\n%s", tt.in, diff)
			}
			if diff := cmp.Diff(refScan([]byte(tt.in), 0), scan(tt.in)); diff != "" {
				t.Errorf("Scan(%q) differs from refScan (-ref +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestScanAtOffset(t *testing.T) {
	in := []byte(`{"a":"b\n"}`)
	end, f, k := jsonlex.Scan(in, 5)
	if end != 10 || f != jsonlex.Escaped || k != jsonlex.OK {
		t.Fatalf("Scan at 5 = %d, %v, %v; want 10, Escaped, OK", end, f, k)
	}
}

// refScan is Scan written plainly, one byte and one utf8.DecodeRune at a
// time: the oracle for the word-at-a-time loop and the UTF-8 check.
func refScan(b []byte, i int) scanResult {
	var f jsonlex.Flags
	for i++; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			return scanResult{i + 1, f, jsonlex.OK}
		case c < 0x20:
			return scanResult{i, 0, jsonlex.Control}
		case c == '\\':
			f |= jsonlex.Escaped
			if i+1 >= len(b) {
				return scanResult{i + 1, 0, jsonlex.BadEscape}
			}
			switch b[i+1] {
			case '"', '\\', 'b', 'f', 'n', 'r', 't':
				i += 2
				continue
			case '/':
				f |= jsonlex.NotCanonical
				i += 2
				continue
			case 'u':
			default:
				return scanResult{i + 1, 0, jsonlex.BadEscape}
			}
			r, ok := refHex(b[i+2:])
			if !ok {
				return scanResult{i, 0, jsonlex.BadHex}
			}
			if h := string(b[i+2 : i+6]); r >= 0x20 || r == '\b' || r == '\t' || r == '\n' || r == '\f' || r == '\r' || h != strings.ToLower(h) {
				f |= jsonlex.NotCanonical
			}
			if utf16.IsSurrogate(r) {
				if r >= 0xDC00 || !bytes.HasPrefix(b[i+6:], []byte(`\u`)) {
					return scanResult{i, 0, jsonlex.Surrogate}
				}
				if r2, ok := refHex(b[i+8:]); !ok || utf16.DecodeRune(r, r2) == utf8.RuneError {
					return scanResult{i, 0, jsonlex.Surrogate}
				}
				i += 6
			}
			i += 6
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return scanResult{i, 0, jsonlex.UTF8}
			}
			i += size
		}
	}
	return scanResult{i, 0, jsonlex.Unterminated}
}

func refHex(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// TestScanWordBoundaries puts each kind of byte that ends a plain run at
// every offset of the first three words, after plain bytes at the edges of
// the plain range, so the eight-at-a-time loop finds the first one exactly.
func TestScanWordBoundaries(t *testing.T) {
	ends := []string{"\x00", "\x1f", `"`, `\n`, `\`, `\u00`, "\x80", "\xff", "é", "\xe2\x82", "😀"}
	fillers := []byte{0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7e, 0x7f}
	for n := 0; n <= 24; n++ {
		for _, fill := range fillers {
			for _, end := range ends {
				for _, tail := range []string{"", `"`, `x"`, strings.Repeat("\x01", 9)} {
					in := []byte(`"` + strings.Repeat(string(fill), n) + end + tail)
					got := scan(string(in))
					if want := refScan(in, 0); got != want {
						t.Fatalf("Scan(%q) = %+v, want %+v", in, got, want)
					}
				}
			}
		}
	}
}

// TestScanUTF8 holds Scan's UTF-8 check to unicode/utf8 for every lead
// byte and second byte, with third and fourth bytes at the edges of the
// continuation range.
func TestScanUTF8(t *testing.T) {
	edges := []byte{0x00, 0x22, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xf4, 0xff}
	in := []byte{'"', 0, 0, 0, 0, '"'}
	for c0 := 0x80; c0 <= 0xff; c0++ {
		for c1 := 0; c1 <= 0xff; c1++ {
			for _, c2 := range edges {
				for _, c3 := range edges {
					in[1], in[2], in[3], in[4] = byte(c0), byte(c1), c2, c3
					r, size := utf8.DecodeRune(in[1:5])
					end, _, k := jsonlex.Scan(in, 0)
					if r == utf8.RuneError && size == 1 {
						if k != jsonlex.UTF8 || end != 1 {
							t.Fatalf("Scan(%q) = %d, %v; want a UTF-8 fault at 1", in, end, k)
						}
					} else if k != jsonlex.OK && end < 1+size {
						t.Fatalf("Scan(%q) = %d, %v; want no fault inside %U", in, end, k, r)
					}
				}
			}
		}
	}
}

func TestKindString(t *testing.T) {
	for k := jsonlex.OK; k <= jsonlex.UTF8; k++ {
		if s := k.String(); s == "" || s == "unknown fault" {
			t.Errorf("Kind(%d) has no text", k)
		}
	}
}

func TestDecode(t *testing.T) {
	tests := []struct{ in, want string }{
		{``, ``},
		{`abc`, `abc`},
		{`\"\\\/\b\f\n\r\t`, "\"\\/\b\f\n\r\t"},
		{`\u0041\u00e9\u20AC\ud83d\ude00`, "Aé€😀"},
		{`a\u0000b`, "a\x00b"},
		{`é\nx`, "é\nx"},
		{`\ufffd`, "\ufffd"},
	}
	for _, tt := range tests {
		if got := string(jsonlex.AppendUnescaped([]byte("pre:"), []byte(tt.in))); got != "pre:"+tt.want {
			t.Errorf("AppendUnescaped(%q) = %q, want %q", tt.in, got, "pre:"+tt.want)
		}
		var runes []rune
		for s := []byte(tt.in); len(s) > 0; {
			r, n := jsonlex.DecodeRune(s)
			runes = append(runes, r)
			s = s[n:]
		}
		if got := string(runes); got != tt.want {
			t.Errorf("DecodeRune over %q = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAppendCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"abc", `"abc"`},
		{"a\"b\\c/d", `"a\"b\\c/d"`},
		{"\b\t\n\f\r", `"\b\t\n\f\r"`},
		{"\x00\x01\x0b\x1f\x7f", "\"\\u0000\\u0001\\u000b\\u001f\x7f\""},
		{"<>&\u2028\u2029é😀\ufffd", "\"<>&\u2028\u2029é😀\ufffd\""},
	}
	for _, tt := range tests {
		got, ok := jsonlex.AppendCanonical([]byte("x"), tt.in)
		if !ok || string(got) != "x"+tt.want {
			t.Errorf("AppendCanonical(%q) = %q, %v; want %q", tt.in, got, ok, "x"+tt.want)
		}
		if want, err := jcs.Transform(got[1:]); err != nil || !bytes.Equal(want, got[1:]) {
			t.Errorf("AppendCanonical(%q) = %q; jcs writes %q (%v)", tt.in, got[1:], want, err)
		}
	}
	for _, bad := range []string{"\xff", "a\xc0\xaf", "\xed\xa0\x80"} {
		if got, ok := jsonlex.AppendCanonical([]byte("x"), bad); ok || string(got) != "x" {
			t.Errorf("AppendCanonical(%q) = %q, %v; want x, false", bad, got, ok)
		}
	}
}

func TestAppendCanonicalContents(t *testing.T) {
	tests := []struct{ in, want string }{
		{`abc`, `abc`},
		{`\"\\\/\b\f\n\r\t`, `\"\\/\b\f\n\r\t`},
		{`\u0041\u00E9\u000a\u000B\u001f\u007f`, "Aé\\n\\u000b\\u001f\x7f"},
		{`\u003c\u0026\u2028\ud83d\ude00`, "<&\u2028😀"},
		{`\u0022\u005c\u002f`, `\"\\/`},
	}
	for _, tt := range tests {
		tok := []byte(`"` + tt.in + `"`)
		end, f, k := jsonlex.Scan(tok, 0)
		if k != jsonlex.OK || end != len(tok) {
			t.Fatalf("Scan(%q) = %d, %v", tok, end, k)
		}
		if got := string(jsonlex.AppendCanonicalContents(nil, tok[1:end-1], f)); got != tt.want {
			t.Errorf("AppendCanonicalContents(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// strictValue is the oracle: encoding/json's decoding of a whole string
// token, and whether it is strictly valid: encoding/json accepts it, it is
// valid UTF-8, and encoding/json replaced no unpaired surrogate escape by
// U+FFFD (every U+FFFD it decoded is a literal one or a \ufffd escape).
func strictValue(token []byte) (string, bool) {
	var v string
	if err := json.Unmarshal(token, &v); err != nil || !utf8.Valid(token) {
		return "", false
	}
	fffd := bytes.Count(token, []byte("\ufffd"))
	for i := 0; i+6 <= len(token); i++ {
		if token[i] == '\\' {
			if strings.EqualFold(string(token[i:i+6]), `\ufffd`) {
				fffd++
			}
			i++ // the escaped character
		}
	}
	return v, strings.Count(v, "\ufffd") == fffd
}

// FuzzScan holds the lexer to encoding/json: a token Scan accepts decodes
// to the same value both ways, and one it refuses is one encoding/json
// refuses or could only decode by replacing invalid UTF-8 or an unpaired
// surrogate with U+FFFD. It also holds Scan to refScan, the flags to their
// meaning, and the canonical writers to jcs.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`abc`, `\"\\\/\b\f\n\r\t`, `\u0041\u00e9\ud83d\ude00\ufffd`, `\u000a\u001F\u001f`, "é€😀\x7f",
		`\ud800`, `\udc00\ud800`, `\ud800\u0041`, `\u12`, `\x`, `\`, "\xff", "\xc0\xaf", "\xed\xa0\x80", "a\tb",
		`a" : "b`, "abcdefghijklmnop\"", `\\ud800`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, contents []byte) {
		in := append([]byte{'"'}, contents...)
		in = append(in, '"')
		end, flags, kind := jsonlex.Scan(in, 0)
		got := scanResult{end, flags, kind}
		if kind != jsonlex.OK {
			got.Flags = 0
		}
		if want := refScan(in, 0); got != want {
			t.Fatalf("Scan(%q) = %+v, refScan %+v", in, got, want)
		}
		if kind != jsonlex.OK {
			if end < 1 || end > len(in) {
				t.Fatalf("Scan(%q): fault offset %d out of range", in, end)
			}
			if _, ok := strictValue(in); ok {
				t.Fatalf("Scan(%q) = %v at %d, but encoding/json decodes it strictly", in, kind, end)
			}
			return
		}
		token := in[:end]
		want, ok := strictValue(token)
		if !ok {
			t.Fatalf("Scan accepts %q, encoding/json does not (strictly)", token)
		}
		s := token[1 : len(token)-1]
		if got := jsonlex.AppendUnescaped(nil, s); string(got) != want {
			t.Fatalf("AppendUnescaped(%q) = %q, encoding/json %q", s, got, want)
		}
		var runes []rune
		for rest := s; len(rest) > 0; {
			r, n := jsonlex.DecodeRune(rest)
			runes = append(runes, r)
			rest = rest[n:]
		}
		if string(runes) != want {
			t.Fatalf("DecodeRune over %q gives %q, encoding/json %q", s, string(runes), want)
		}
		if escaped := bytes.IndexByte(s, '\\') >= 0; escaped != (flags&jsonlex.Escaped != 0) {
			t.Fatalf("Scan(%q): flags %b, escapes present %v", token, flags, escaped)
		}
		canon, ok := jsonlex.AppendCanonical(nil, want)
		if !ok {
			t.Fatalf("AppendCanonical(%q) refuses a value Scan accepted", want)
		}
		if jcsOut, err := jcs.Transform(token); err != nil || !bytes.Equal(jcsOut, canon) {
			t.Fatalf("AppendCanonical(%q) = %q, jcs %q (%v)", want, canon, jcsOut, err)
		}
		if contents := jsonlex.AppendCanonicalContents(nil, s, flags); !bytes.Equal(canon[1:len(canon)-1], contents) {
			t.Fatalf("AppendCanonicalContents(%q) = %q, want %q", s, contents, canon[1:len(canon)-1])
		}
		if canonical := bytes.Equal(canon, token); canonical != (flags&jsonlex.NotCanonical == 0) {
			t.Fatalf("Scan(%q): flags %b, but canonical form %q", token, flags, canon)
		}
	})
}
