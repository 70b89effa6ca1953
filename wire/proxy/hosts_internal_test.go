package proxy

import (
	"strings"
	"testing"
)

func TestParseServerHosts(t *testing.T) {
	tests := []struct {
		in      string
		want    []HostAddr
		wantErr string
	}{
		{in: "db1", want: []HostAddr{{"db1", 5432}}},
		{in: "db1:6432", want: []HostAddr{{"db1", 6432}}},
		{in: " db1 , db2:5433 ", want: []HostAddr{{"db1", 5432}, {"db2", 5433}}},
		{in: "10.0.0.1:5433,10.0.0.2", want: []HostAddr{{"10.0.0.1", 5433}, {"10.0.0.2", 5432}}},
		{in: "[::1]:5433,[fe80::1]", want: []HostAddr{{"::1", 5433}, {"fe80::1", 5432}}},
		{in: "::1", want: []HostAddr{{"::1", 5432}}},
		{in: "/var/run/postgresql,db2", want: []HostAddr{{"/var/run/postgresql", 5432}, {"db2", 5432}}},
		{in: "", wantErr: "must be set"},
		{in: "db1,", wantErr: "entry 2 (\"\"): empty entry"},
		{in: "db1,,db2", wantErr: "empty entry"},
		{in: "db 1", wantErr: "contains ' '"},
		{in: "db1:0", wantErr: "between 1 and 65535"},
		{in: "db1:65536", wantErr: "between 1 and 65535"},
		{in: "db1:+5", wantErr: "between 1 and 65535"},
		{in: "db1:", wantErr: "between 1 and 65535"},
		{in: "[::1", wantErr: "missing ]"},
		{in: "[::1]x", wantErr: "expected :port"},
		{in: "[10.0.0.1]:5", wantErr: "not an IPv6 address"},
		{in: "::zz", wantErr: "not an IPv6 address"},
		{in: "db1,db1:5432", wantErr: "listed twice"},
		{in: "/" + strings.Repeat("d", 120), wantErr: "longer than 100 bytes"},
		{in: strings.Repeat("h,", MaxServerHosts) + "h", wantErr: "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseServerHosts(tt.in, 5432)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseServerHosts(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseServerHosts(%q): %v", tt.in, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParseServerHosts(%q) = %v, want %v", tt.in, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("ParseServerHosts(%q) = %v, want %v", tt.in, got, tt.want)
				}
			}
		})
	}
}

func TestHostAddrDial(t *testing.T) {
	for _, tt := range []struct {
		h             HostAddr
		network, addr string
	}{
		{HostAddr{"db1", 5432}, "tcp", "db1:5432"},
		{HostAddr{"::1", 5433}, "tcp", "[::1]:5433"},
		{HostAddr{"/run/pg", 5432}, "unix", "/run/pg/.s.PGSQL.5432"},
	} {
		if n, a := tt.h.dialAddr(); n != tt.network || a != tt.addr {
			t.Errorf("%v.dialAddr() = %s %s, want %s %s", tt.h, n, a, tt.network, tt.addr)
		}
	}
}

func TestRoleMatches(t *testing.T) {
	primary := serverRole{}
	roPrimary := serverRole{readOnly: true}
	standby := serverRole{inRecovery: true, readOnly: true}
	for _, tt := range []struct {
		attrs                       string
		primary, roPrimary, standby bool
	}{
		{AttrsReadWrite, true, false, false},
		{AttrsPrimary, true, true, false},
		{AttrsReadOnly, false, true, true},
		{AttrsStandby, false, false, true},
		{AttrsPreferStandby, false, false, true},
		{AttrsAny, true, true, true},
	} {
		if got := [3]bool{roleMatches(tt.attrs, primary), roleMatches(tt.attrs, roPrimary), roleMatches(tt.attrs, standby)}; got != [3]bool{tt.primary, tt.roPrimary, tt.standby} {
			t.Errorf("%s: matches primary, read-only primary, standby = %v", tt.attrs, got)
		}
	}
	for _, bad := range []string{"master", "READ-WRITE", "prefer_standby"} {
		if CheckTargetSessionAttrs(bad) == nil {
			t.Errorf("CheckTargetSessionAttrs(%q) accepted it", bad)
		}
	}
	if effectiveAttrs("", 1) != AttrsAny || effectiveAttrs("", 2) != AttrsReadWrite || effectiveAttrs(AttrsStandby, 1) != AttrsStandby {
		t.Error("effectiveAttrs: wrong default")
	}
}

// TestOrderPrefersHealthyMatches: hosts known to match come first, then
// unknown, then up with the wrong role, then down, each in list order.
func TestOrderPrefersHealthyMatches(t *testing.T) {
	hosts := []HostAddr{{"down", 1}, {"standby", 1}, {"unknown", 1}, {"primary", 1}}
	d := &dialer{hosts: hosts, attrs: AttrsReadWrite}
	hc := newHealthChecker(d, "", "", "", 1, 1, nil)
	hc.states[hosts[0]] = hostHealth{checked: true}
	hc.states[hosts[1]] = hostHealth{checked: true, up: true, role: serverRole{inRecovery: true, readOnly: true}}
	hc.states[hosts[3]] = hostHealth{checked: true, up: true}
	d.health = hc
	got := d.order()
	want := []HostAddr{{"primary", 1}, {"unknown", 1}, {"standby", 1}, {"down", 1}}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order = %v, want %v", got, want)
		}
	}
	sc := &serverConn{host: hosts[3]}
	if why := d.hostStale(sc); why != "" {
		t.Fatalf("a connection to the matching primary is stale: %s", why)
	}
	hc.states[hosts[3]] = hostHealth{checked: true, up: true, role: serverRole{inRecovery: true, readOnly: true}}
	if why := d.hostStale(sc); !strings.Contains(why, "changed role from primary to standby") {
		t.Fatalf("hostStale after demotion = %q", why)
	}
}

func FuzzParseServerHosts(f *testing.F) {
	for _, s := range []string{"db1", "db1:5433,db2", "[::1]:5", "/tmp,/run/pg", "::1", "[", "a:b:c", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hosts, err := ParseServerHosts(s, 5432)
		if err != nil {
			return
		}
		if len(hosts) == 0 || len(hosts) > MaxServerHosts {
			t.Fatalf("%q: %d hosts", s, len(hosts))
		}
		// What is accepted round-trips through its printed form.
		parts := make([]string, len(hosts))
		for i, h := range hosts {
			if h.Port < 1 || h.Port > 65535 {
				t.Fatalf("%q: port %d", s, h.Port)
			}
			if strings.HasPrefix(h.Host, "/") {
				parts[i] = h.Host
			} else {
				_, parts[i] = h.dialAddr()
			}
		}
		again, err := ParseServerHosts(strings.Join(parts, ","), 5432)
		if err != nil {
			t.Fatalf("%q printed as %q does not parse: %v", s, strings.Join(parts, ","), err)
		}
		for i := range hosts {
			if again[i] != hosts[i] {
				t.Fatalf("%q: round trip %v != %v", s, again, hosts)
			}
		}
	})
}
