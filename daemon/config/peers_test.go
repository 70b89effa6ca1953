package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParsePeers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Peer
		err  string // substring of the error; "" = accepted
	}{
		{in: "", want: nil},
		{in: "  ", want: nil},
		{in: "1=10.0.0.1:6432", want: []Peer{{1, "10.0.0.1:6432"}}},
		{in: "2=b.example:6432, 1=a.example:6433", want: []Peer{{1, "a.example:6433"}, {2, "b.example:6432"}}},
		{in: "16383=[::1]:6432", want: []Peer{{16383, "[::1]:6432"}}},
		{in: " 7 = 127.0.0.1:1 ", want: []Peer{{7, "127.0.0.1:1"}}},
		{in: "3=/run/multigres-3/.s.PGSQL.6432", want: []Peer{{3, "/run/multigres-3/.s.PGSQL.6432"}}},
		{in: "0=10.0.0.1:6432", err: "from 1 to 16383"},
		{in: "16384=10.0.0.1:6432", err: "from 1 to 16383"},
		{in: "-1=10.0.0.1:6432", err: "from 1 to 16383"},
		{in: "x=10.0.0.1:6432", err: "from 1 to 16383"},
		{in: "10.0.0.1:6432", err: "is not ID=host:port"},
		{in: "1=", err: "is not ID=host:port"},
		{in: "=10.0.0.1:6432", err: "is not ID=host:port"},
		{in: "1=10.0.0.1", err: "is not host:port"},
		{in: "1=::1:6432", err: "is not host:port"},
		{in: "1=:6432", err: "is not host:port"},
		{in: "1=10.0.0.1:0", err: "port"},
		{in: "1=10.0.0.1:65536", err: "port"},
		{in: "1=10.0.0.1:http", err: "port"},
		{in: "1=bad_host:6432", err: "neither an IP address nor a valid host name"},
		{in: "1=/run/x/", err: "not a clean path"},
		{in: "1=/run/../x", err: "not a clean path"},
		{in: "1=a:1,1=b:2", err: "peer id 1 is listed twice"},
		{in: "1=a:1,2=a:1", want: []Peer{{1, "a:1"}, {2, "a:1"}}},
		{in: "1=a:1,,2=b:2", err: "empty item"},
	} {
		got, err := ParsePeers(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParsePeers(%q): %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParsePeers(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.err)
		case tc.err == "" && !slices.Equal(got, tc.want):
			t.Errorf("ParsePeers(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestPeersConfig(t *testing.T) {
	c, err := Parse("p.conf", []byte("peer_id = 2\npeers = 1=127.0.0.1:7001, 2=127.0.0.1:7002\nso_reuseport = on\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.PeerID != 2 || !c.SoReusePort || len(c.Peers) != 2 || c.Peers[1].Network() != "tcp" {
		t.Fatalf("parsed %d %v %v", c.PeerID, c.SoReusePort, c.Peers)
	}
	if live, restart := c.Diff(Default()); !slices.Equal(live, []string{"peers"}) || !slices.Equal(restart, []string{"so_reuseport", "peer_id"}) {
		t.Errorf("Diff: live %v, restart %v", live, restart)
	}
	_, err = Parse("p.conf", []byte("peers = 1=127.0.0.1:7001\n"))
	var errs *Errors
	if !errors.As(err, &errs) || len(*errs) != 1 || (*errs)[0].Key != "peers" || !strings.Contains((*errs)[0].Why, "peer_id is not") {
		t.Errorf("peers without peer_id: %v", err)
	}
	if _, err := Parse("p.conf", []byte("peer_id = 16384\n")); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("peer_id 16384: %v", err)
	}
}

// FuzzParsePeers checks that ParsePeers never panics and that what it
// accepts formats back to a value that parses to the same peers.
func FuzzParsePeers(f *testing.F) {
	for _, seed := range []string{"", "1=a:1", "2=[::1]:6432,1=/run/s", "16383=h.example:65535", "1=a:1,1=b:2", "x=", "1=[:", "=,="} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		peers, err := ParsePeers(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for i, p := range peers {
			if p.ID < 1 || p.ID > MaxPeerID || p.Addr == "" || i > 0 && peers[i-1].ID >= p.ID {
				t.Fatalf("bad peers %v from %q", peers, s)
			}
		}
		again, err := ParsePeers(FormatPeers(peers))
		if err != nil || !slices.Equal(again, peers) {
			t.Fatalf("%q: formatted %q parses to %v, %v", s, FormatPeers(peers), again, err)
		}
	})
}
