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
// admin console's commands (Admin), client TLS (ClientTLS) and the bypass
// users' verifiers (BypassVerifiers) do not come from the file and are left
// unset.
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
		AdminUsers:           c.AdminUsers, Version: Version,
		ClientCertUserMap: string(c.ClientTLSCertUserMap),
	}
}
