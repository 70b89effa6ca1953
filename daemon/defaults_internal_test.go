package daemon

import (
	"testing"
	"time"

	"github.com/multigres/proxy/daemon/config"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/proxytest"
	"github.com/multigres/proxy/wire/proxy"
)

// TestProxyAcceptsTheDefaults: the proxy fills in no defaults, so the key
// table's must be complete enough for it, and a documented zero must reach
// it unchanged.
func TestProxyAcceptsTheDefaults(t *testing.T) {
	for _, text := range []string{"", "auth_cache_ttl = 0"} {
		cfg, err := config.Parse("/etc/multigres/multigres.conf", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		opts := ProxyOptions(cfg)
		if opts.AuthCacheTTL != cfg.AuthCacheTTL {
			t.Errorf("%q: AuthCacheTTL %v, configured %v", text, opts.AuthCacheTTL, cfg.AuthCacheTTL)
		}
		srv, err := proxy.New(opts, discard()) // opens no connection
		if err != nil {
			t.Fatalf("%q: proxy.New refuses the defaults: %v", text, err)
		}
		srv.Close()
	}
}

// TestProxyRefusesMissingSettings: options without what the key table
// would have supplied are an error, not silently defaulted.
func TestProxyRefusesMissingSettings(t *testing.T) {
	for name, unset := range map[string]func(*proxy.Options){
		"pool_mode":              func(o *proxy.Options) { o.PoolMode = "" },
		"default_pool_size":      func(o *proxy.Options) { o.DefaultPoolSize = 0 },
		"server_connect_timeout": func(o *proxy.Options) { o.ServerConnectTimeout = 0 },
		"auth_cache_ttl":         func(o *proxy.Options) { o.AuthCacheTTL = -1 },
	} {
		opts := ProxyOptions(config.Default())
		unset(&opts)
		if srv, err := proxy.New(opts, discard()); err == nil {
			srv.Close()
			t.Errorf("proxy.New accepts options without %s", name)
		}
	}
}

// TestTestOptionsUseTheDefaults: the tests' proxy options spell out the
// defaults they need (internal packages cannot import daemon/config); they
// must stay the key table's.
func TestTestOptionsUseTheDefaults(t *testing.T) {
	def := ProxyOptions(config.Default())
	o := proxytest.Options(&demo.Env{Cluster: &pgcluster.Cluster{}, ContextVariables: def.ContextVariables})
	if o.ServerConnectTimeout != def.ServerConnectTimeout || o.AuthCacheTTL != def.AuthCacheTTL {
		t.Errorf("proxytest.Options: server_connect_timeout %v, auth_cache_ttl %v; the defaults are %v, %v",
			o.ServerConnectTimeout, o.AuthCacheTTL, def.ServerConnectTimeout, def.AuthCacheTTL)
	}
	type resilience struct {
		login, checkDelay, idle, intvl time.Duration
		query                          string
		keepalive                      bool
		cnt                            int
		budget                         int64
	}
	pick := func(o proxy.Options) resilience {
		return resilience{o.ClientLoginTimeout, o.ServerCheckDelay, o.TCPKeepIdle, o.TCPKeepIntvl, o.ServerCheckQuery,
			o.TCPKeepalive, o.TCPKeepCnt, o.MaxBufferedMessageBytes}
	}
	if got, want := pick(o), pick(def); got != want {
		t.Errorf("proxytest.Options: %+v; the defaults are %+v", got, want)
	}
}
