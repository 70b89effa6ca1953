package sqlguard

// The proxy answers some statements itself (pool reset sequences, LISTEN),
// tracks others (SET of a forwarded setting) and must know exactly what
// each statement of a query string says. Statements gives it the tokens of
// every statement, read by the same lexer the guard uses, so that the two
// never disagree about where a statement starts or ends. It is off the hot
// path: the proxy calls it only when Inspect reported a feature that needs
// a closer look.

// TokenKind classifies a Token.
type TokenKind uint8

const (
	// Word is an unquoted identifier or keyword; Value is folded to lower
	// case and truncated as PostgreSQL does.
	Word TokenKind = iota
	// QuotedIdent is a "quoted identifier"; Value is its name, truncated.
	QuotedIdent
	// String is a string constant whose value could be read ('…', N'…',
	// E'…' without backslashes, $$…$$); Value is the value.
	String
	// Number is a numeric constant; Value is its text.
	Number
	// Op is one byte of punctuation or an operator character; Value is it.
	Op
	// Other is anything else (parameters, U&'…', B'…', E'…' with escapes,
	// U&"…" names): its value is not read.
	Other
)

// Token is one token of a statement.
type Token struct {
	Kind  TokenKind
	Value string
	// Start and End delimit the token's text in the query string.
	Start, End int
}

// Statement is one statement of a query string: its tokens, and the extent
// of its text from the first token to the last (comments and white space
// around it, and the semicolon, excluded).
type Statement struct {
	Tokens     []Token
	Start, End int
}

// Statements splits sql into statements the way the guard and PostgreSQL
// read it. Empty statements (";;") are left out, as PostgreSQL leaves them
// out. ok is false when the lexer cannot finish the string (an unclosed
// quote or comment): PostgreSQL rejects such a string as a whole.
func Statements(sql string) (stmts []Statement, ok bool) {
	lx := lexer{s: sql}
	var cur Statement
	for {
		t := lx.next()
		switch t.kind {
		case tokError:
			return nil, false
		case tokSemi, tokEnd:
			if len(cur.Tokens) > 0 {
				cur.End = cur.Tokens[len(cur.Tokens)-1].End
				stmts = append(stmts, cur)
			}
			if t.kind == tokEnd {
				return stmts, true
			}
			cur = Statement{}
			continue
		}
		tok := Token{Start: t.start, End: t.end, Kind: Other}
		text := sql[t.start:t.end]
		switch t.kind {
		case tokIdent:
			tok.Kind, tok.Value = Word, truncateIdent(lowerASCII(text))
		case tokQIdent:
			tok.Kind, tok.Value = QuotedIdent, truncateIdent(undouble(text[1:len(text)-1], '"'))
		case tokString, tokEString, tokDollar:
			if v, ok := stringValue(sql, t); ok {
				tok.Kind, tok.Value = String, v
			}
		case tokNumber:
			tok.Kind, tok.Value = Number, text
		case tokOp:
			tok.Kind, tok.Value = Op, text
		}
		if len(cur.Tokens) == 0 {
			cur.Start = t.start
		}
		cur.Tokens = append(cur.Tokens, tok)
	}
}

// IsWord reports whether t is the unquoted keyword kw (lower case).
func (t Token) IsWord(kw string) bool { return t.Kind == Word && t.Value == kw }

// IsOp reports whether t is the punctuation character c.
func (t Token) IsOp(c byte) bool { return t.Kind == Op && len(t.Value) == 1 && t.Value[0] == c }

// IsName reports whether t is an identifier, quoted or not.
func (t Token) IsName() bool { return t.Kind == Word || t.Kind == QuotedIdent }

// CanonicalEncoding returns PostgreSQL's name for a client encoding that
// SafeClientEncoding accepts, matching names as PostgreSQL's
// pg_char_to_encoding does (case and non-alphanumeric characters ignored,
// so "'utf-8'" is UTF8). ok is false for encodings that are not safe or not
// known.
func CanonicalEncoding(name string) (string, bool) {
	if !SafeClientEncoding(name) {
		return "", false
	}
	var b []byte
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
			b = append(b, c+'a'-'A')
		case 'a' <= c && c <= 'z' || isDigit(c):
			b = append(b, c)
		}
	}
	canon, ok := encodingNames[string(b)]
	return canon, ok
}

// encodingNames maps PostgreSQL's cleaned aliases of the safe encodings
// (encnames.c, pg_encname_tbl) to the names it reports (pg_enc2name_tbl).
var encodingNames = map[string]string{
	"abc": "WIN1258", "alt": "WIN866", "euccn": "EUC_CN", "eucjis2004": "EUC_JIS_2004", "eucjp": "EUC_JP",
	"euckr": "EUC_KR", "euctw": "EUC_TW", "iso88591": "LATIN1", "iso885910": "LATIN6", "iso885913": "LATIN7",
	"iso885914": "LATIN8", "iso885915": "LATIN9", "iso885916": "LATIN10", "iso88592": "LATIN2",
	"iso88593": "LATIN3", "iso88594": "LATIN4", "iso88595": "ISO_8859_5", "iso88596": "ISO_8859_6",
	"iso88597": "ISO_8859_7", "iso88598": "ISO_8859_8", "iso88599": "LATIN5", "koi8": "KOI8R", "koi8r": "KOI8R",
	"koi8u": "KOI8U", "latin1": "LATIN1", "latin2": "LATIN2", "latin3": "LATIN3", "latin4": "LATIN4",
	"latin5": "LATIN5", "latin6": "LATIN6", "latin7": "LATIN7", "latin8": "LATIN8", "latin9": "LATIN9",
	"latin10": "LATIN10", "muleinternal": "MULE_INTERNAL", "sqlascii": "SQL_ASCII", "tcvn": "WIN1258",
	"tcvn5712": "WIN1258", "unicode": "UTF8", "utf8": "UTF8", "vscii": "WIN1258", "win": "WIN1251",
	"win1250": "WIN1250", "win1251": "WIN1251", "win1252": "WIN1252", "win1253": "WIN1253", "win1254": "WIN1254",
	"win1255": "WIN1255", "win1256": "WIN1256", "win1257": "WIN1257", "win1258": "WIN1258", "win866": "WIN866",
	"win874": "WIN874", "windows1250": "WIN1250", "windows1251": "WIN1251", "windows1252": "WIN1252",
	"windows1253": "WIN1253", "windows1254": "WIN1254", "windows1255": "WIN1255", "windows1256": "WIN1256",
	"windows1257": "WIN1257", "windows1258": "WIN1258", "windows866": "WIN866", "windows874": "WIN874",
}
