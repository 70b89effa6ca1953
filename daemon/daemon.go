// Package daemon runs Multigres as a long-lived service: it loads the
// configuration, opens or inherits listeners, drops privileges, serves the
// proxy, talks to systemd, reloads on request and shuts down cleanly.
package daemon

import (
	"github.com/multigres/proxy/daemon/config"
	"github.com/multigres/proxy/wire/proxy"
)

// Version is the release version, set at build time with
// -ldflags "-X github.com/multigres/proxy/daemon.Version=...".
var Version = "dev"

// ProxyOptions translates a configuration into the proxy's options. The
// admin console's commands (Admin) and client TLS (ClientTLS) are objects of
// the running daemon and are left unset here.
func ProxyOptions(c *config.Config) proxy.Options {
	mode := "disable"
	if c.ServerTLSSSLMode != "" {
		mode = string(c.ServerTLSSSLMode)
	}
	return proxy.Options{
		ServerHost: c.ServerHost, ServerPort: c.ServerPort, ServerUser: c.ServerUser,
		ServerPassword: c.ServerPassword.Reveal(), ServerConnectTimeout: c.ServerConnectTimeout,
		ServerTLSMode: mode, ServerTLSCAFile: c.ServerTLSCAFile, ServerTLSCertFile: c.ServerTLSCertFile,
		ServerTLSKeyFile: c.ServerTLSKeyFile,
		AuthUser:         c.AuthUser, AuthPassword: c.AuthPassword.Reveal(), AuthDBName: c.AuthDBName, AuthCacheTTL: c.AuthCacheTTL,
		TenantRoles: c.TenantRoles, ContextVariables: c.ContextVariables, ValueSeparator: c.ValueSeparator,
		ValuePattern: c.TenantValuePattern, SuperuserBypass: c.SuperuserBypass,
		PoolMode: string(c.PoolMode), DefaultPoolSize: c.DefaultPoolSize, MinPoolSize: c.MinPoolSize,
		ReservePoolSize: c.ReservePoolSize, ReservePoolTimeout: c.ReservePoolTimeout, MaxClientConn: c.MaxClientConn,
		QueryWaitTimeout: c.QueryWaitTimeout, ServerIdleTimeout: c.ServerIdleTimeout, ServerLifetime: c.ServerLifetime,
		ClientIdleTimeout: c.ClientIdleTimeout, IdleTransactionTimeout: c.IdleTransactionTimeout,
		MaxTenantConnections: c.MaxTenantConnections,
		ClientLoginTimeout:   c.ClientLoginTimeout, MaxBufferedMessageBytes: c.MaxBufferedMessageBytes,
		ServerCheckDelay: c.ServerCheckDelay, ServerCheckQuery: c.ServerCheckQuery,
		TCPKeepalive: c.TCPKeepalive, TCPKeepIdle: c.TCPKeepIdle, TCPKeepIntvl: c.TCPKeepIntvl, TCPKeepCnt: c.TCPKeepCnt,
		AdminUsers: c.AdminUsers, Version: Version,
		ClientCertUserMap: string(c.ClientTLSCertUserMap),
		BypassVerifiers:   bypassVerifiers(c),
		// Many instances.
		PeerID: c.PeerID, Peers: peers(c),
		// High availability (issue 14).
		TargetSessionAttrs: c.TargetSessionAttrs, LoadBalanceHosts: c.LoadBalanceHosts,
		HealthCheckInterval: c.ServerHealthCheckInterval, HealthCheckTimeout: c.ServerHealthCheckTimeout,
	}
}

func peers(c *config.Config) []proxy.Peer {
	var out []proxy.Peer
	for _, p := range c.Peers {
		out = append(out, proxy.Peer{ID: p.ID, Network: p.Network(), Addr: p.Addr})
	}
	return out
}

func bypassVerifiers(c *config.Config) map[string]string {
	if len(c.BypassVerifiers) == 0 {
		return nil
	}
	out := make(map[string]string, len(c.BypassVerifiers))
	for user, v := range c.BypassVerifiers {
		out[user] = v.Reveal()
	}
	return out
}
