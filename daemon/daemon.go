// Package daemon runs Multigres as a long-lived service: it loads the
// configuration, opens or inherits listeners, drops privileges, serves the
// proxy, talks to systemd, reloads on request and shuts down cleanly.
package daemon

import (
	"fmt"

	"github.com/multigres/proxy/daemon/config"
	"github.com/multigres/proxy/wire/proxy"
)

// Version is the release version, set at build time with
// -ldflags "-X github.com/multigres/proxy/daemon.Version=...".
var Version = "dev"

// ProxyOptions translates a configuration into the proxy's options.
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
	}
}

// checkOptions refuses a configuration the options cannot carry out. A
// client_tls_sslmode other than disable without a TLS provider would make
// the proxy answer every SSLRequest with "no" and accept plaintext, which is
// the opposite of what the administrator asked for.
func checkOptions(c *config.Config, o proxy.Options) error {
	if c.ClientTLSSSLMode != "" && c.ClientTLSSSLMode != config.SSLDisable && o.ClientTLS == nil {
		return fmt.Errorf("client_tls_sslmode = %s: this build cannot serve client TLS yet; set client_tls_sslmode = disable "+
			"or put a TLS terminator in front", c.ClientTLSSSLMode)
	}
	return nil
}
