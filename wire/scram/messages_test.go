package scram

import (
	"errors"
	"strings"
	"testing"
)

func TestParseClientFirst(t *testing.T) {
	tests := []struct {
		in      string
		want    clientFirst
		wantErr bool
	}{
		{in: "n,,n=,r=abc", want: clientFirst{cbFlag: 'n', gs2Header: "n,,", bare: "n=,r=abc", nonce: "abc"}},
		{in: "y,,n=user,r=abc", want: clientFirst{cbFlag: 'y', gs2Header: "y,,", bare: "n=user,r=abc", nonce: "abc"}},
		{in: "p=tls-server-end-point,,n=,r=x", want: clientFirst{cbFlag: 'p', cbName: "tls-server-end-point",
			gs2Header: "p=tls-server-end-point,,", bare: "n=,r=x", nonce: "x"}},
		{in: "p=tls-unique,,n=,r=x", want: clientFirst{cbFlag: 'p', cbName: "tls-unique",
			gs2Header: "p=tls-unique,,", bare: "n=,r=x", nonce: "x"}},
		// The username is not ours to judge: PostgreSQL ignores it, escapes and all.
		{in: "n,,n=we=2Cird=3D,r=abc", want: clientFirst{cbFlag: 'n', gs2Header: "n,,", bare: "n=we=2Cird=3D,r=abc", nonce: "abc"}},
		{in: "n,,n=,r=abc,x=ext", want: clientFirst{cbFlag: 'n', gs2Header: "n,,", bare: "n=,r=abc,x=ext", nonce: "abc"}},
		{in: "n,,n=,r=!~%$)", want: clientFirst{cbFlag: 'n', gs2Header: "n,,", bare: "n=,r=!~%$)", nonce: "!~%$)"}},
		{in: "", wantErr: true},
		{in: "n", wantErr: true},
		{in: "n,", wantErr: true},
		{in: "n,,", wantErr: true},
		{in: "x,,n=,r=abc", wantErr: true},
		{in: "p,,n=,r=abc", wantErr: true},
		{in: "p=,,n=,r=abc", wantErr: true},
		{in: "p=tls server,,n=,r=abc", wantErr: true},
		{in: "nn,,n=,r=abc", wantErr: true},
		{in: "n,a=admin,n=,r=abc", wantErr: true},
		{in: "n,,m=ext,n=,r=abc", wantErr: true},
		{in: "n,,r=abc", wantErr: true},
		{in: "n,,n=", wantErr: true},
		{in: "n,,n=,r=", wantErr: true},
		{in: "n,,n=,r=a b", wantErr: true},
		{in: "n,,n=,r=ab\x00", wantErr: true},
		{in: "n,,n=,r=\u00e9", wantErr: true},
		{in: "n,,n=,x=abc", wantErr: true},
		{in: "n,,n=,r=abc,", wantErr: true},
		{in: "n,,n=,r=abc,1=x", wantErr: true},
		{in: "n,,n=,r=abc,xy", wantErr: true},
		{in: "n,,n=,r=" + strings.Repeat("a", maxMessageLen), wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseClientFirst([]byte(tc.in))
		if tc.wantErr {
			if !errors.Is(err, ErrBadMessage) {
				t.Errorf("parseClientFirst(%q) error = %v, want ErrBadMessage", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseClientFirst(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseClientFinal(t *testing.T) {
	const proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	tests := []struct {
		in               string
		wantCB, wantBare string
		wantErr          bool
	}{
		{in: "c=biws,r=abc,p=" + proof, wantCB: "n,,", wantBare: "c=biws,r=abc"},
		{in: "c=eSws,r=abc,x=1,y=2,p=" + proof, wantCB: "y,,", wantBare: "c=eSws,r=abc,x=1,y=2"},
		{in: "", wantErr: true},
		{in: "c=biws,r=abc", wantErr: true},
		{in: "c=biws,p=" + proof, wantErr: true},
		{in: "r=abc,c=biws,p=" + proof, wantErr: true},
		{in: "c=biws,r=abc,p=" + proof + ",x=1", wantErr: true},
		{in: "c=b!ws,r=abc,p=" + proof, wantErr: true},
		{in: "c=biws,r=abc,p=" + proof[:len(proof)-1], wantErr: true},
		{in: "c=biws,r=abc,p=YWJj", wantErr: true}, // 3-byte proof
		{in: "c=biws,r=abc,p=", wantErr: true},
		{in: "c=biws,r=abc,,p=" + proof, wantErr: true},
		{in: "c=biws,r=abc,p=" + proof[:20] + "\n" + proof[20:], wantErr: true},
		{in: "c=biws,r=abc,xx,p=" + proof, wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseClientFinal([]byte(tc.in))
		if tc.wantErr {
			if !errors.Is(err, ErrBadMessage) {
				t.Errorf("parseClientFinal(%q) error = %v, want ErrBadMessage", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseClientFinal(%q): %v", tc.in, err)
			continue
		}
		if string(got.cbind) != tc.wantCB || got.withoutProof != tc.wantBare || got.nonce != "abc" || len(got.proof) != 32 {
			t.Errorf("parseClientFinal(%q) = %+v", tc.in, got)
		}
	}
}

func TestParseServerFirst(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{in: "r=abcdef,s=c2FsdA==,i=4096"},
		{in: "r=abcdef,s=c2FsdA==,i=4096,x=ext"},
		{in: "m=ext,r=abcdef,s=c2FsdA==,i=4096", wantErr: true},
		{in: "r=abcdef,s=c2FsdA==", wantErr: true},
		{in: "s=c2FsdA==,r=abcdef,i=4096", wantErr: true},
		{in: "r=,s=c2FsdA==,i=4096", wantErr: true},
		{in: "r=abcdef,s=,i=4096", wantErr: true},
		{in: "r=abcdef,s=c2FsdA,i=4096", wantErr: true},
		{in: "r=abcdef,s=c2FsdA==,i=0", wantErr: true},
		{in: "r=abcdef,s=c2FsdA==,i=-1", wantErr: true},
		{in: "r=abcdef,s=c2FsdA==,i=4096x", wantErr: true},
		{in: "r=abcdef,s=c2FsdA==,i=99999999999", wantErr: true},
		{in: "r=abcdef,s=c2FsdA==,i=4096,", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseServerFirst([]byte(tc.in))
		if tc.wantErr {
			if !errors.Is(err, ErrBadMessage) {
				t.Errorf("parseServerFirst(%q) error = %v, want ErrBadMessage", tc.in, err)
			}
			continue
		}
		if err != nil || got.nonce != "abcdef" || string(got.salt) != "salt" || got.iterations != 4096 {
			t.Errorf("parseServerFirst(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestParseServerFinal(t *testing.T) {
	const sig = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
	tests := []struct {
		in      string
		wantErr error
	}{
		{"v=" + sig, nil},
		{"v=" + sig + ",x=ext", nil},
		{"e=invalid-proof", ErrAuthFailed},
		{"e=other-error,x=1", ErrAuthFailed},
		{"e=<script>", ErrAuthFailed},
		{"", ErrBadMessage},
		{"v=", ErrBadMessage},
		{"v=YWJj", ErrBadMessage},
		{"v=" + sig + ",", ErrBadMessage},
		{"x=" + sig, ErrBadMessage},
	}
	for _, tc := range tests {
		got, err := parseServerFinal([]byte(tc.in))
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Errorf("parseServerFinal(%q) error = %v, want %v", tc.in, err, tc.wantErr)
			continue
		}
		if err == nil && len(got) != 32 {
			t.Errorf("parseServerFinal(%q) signature %d bytes", tc.in, len(got))
		}
		if err != nil && strings.Contains(err.Error(), "<script>") {
			t.Errorf("server error text copied unchecked into %q", err)
		}
	}
}
