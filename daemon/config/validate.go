package config

import (
	"github.com/multigres/proxy/wire/proxy"

	"crypto/tls"
	"fmt"
	"slices"
	"strings"
)

// crossCheck fills defaults that depend on other keys and reports
// combinations of keys that cannot work together.
func (p *parser) crossCheck(c *Config) {
	if len(c.ListenAddr) == 0 && c.UnixSocketDir == "" {
		p.conflict("listen_addr", "is empty and unix_socket_dir is not set: nothing to listen on", "unix_socket_dir")
	}
	p.checkRoles(c)
	if c.MinPoolSize > c.DefaultPoolSize {
		p.conflict("min_pool_size", fmt.Sprintf("%d is larger than default_pool_size %d", c.MinPoolSize, c.DefaultPoolSize),
			"default_pool_size")
	}
	p.checkClientTLS(c)
	p.checkServerTLS(c)
	p.checkPeers(c) // many instances
	p.checkHA(c)
}

// checkHA checks the high-availability keys against each other.
func (p *parser) checkHA(c *Config) {
	if _, err := proxy.ParseServerHosts(c.ServerHost, c.ServerPort); err != nil {
		p.conflict("server_host", err.Error(), "server_port")
	}
	if c.ReadOnlyListenPort != 0 && c.ReadOnlyListenPort == c.ListenPort {
		p.conflict("read_only_listen_port", fmt.Sprintf("%d is also listen_port", c.ReadOnlyListenPort), "listen_port")
	}
}

// checkRoles keeps the proxy's own roles, the tenant roles and the bypass
// names apart: if they overlap, a username could land in the wrong one.
func (p *parser) checkRoles(c *Config) {
	if c.AuthUser == c.ServerUser {
		p.conflict("auth_user", "must differ from server_user: tenant sessions run as server_user and must not "+
			"be able to fetch the seal key", "server_user")
	}
	for _, r := range c.TenantRoles {
		if r == c.ServerUser || r == c.AuthUser {
			p.conflict("tenant_roles", fmt.Sprintf("%q is also server_user or auth_user", r), "server_user", "auth_user")
		}
	}
	for _, name := range c.SuperuserBypass {
		switch {
		case name == c.ServerUser || name == c.AuthUser:
			p.conflict("superuser_bypass", fmt.Sprintf("%q is the proxy's own role (server_user or auth_user)", name),
				"server_user", "auth_user")
		case slices.ContainsFunc(c.TenantRoles, func(r string) bool { return name == r || strings.HasPrefix(name, r+".") }):
			p.conflict("superuser_bypass", fmt.Sprintf("%q is a tenant role or a tenant username", name), "tenant_roles")
		}
	}
}

func (p *parser) checkClientTLS(c *Config) {
	if _, set := p.lines["client_tls_sslmode"]; !set && c.ClientTLSCertFile != "" {
		c.ClientTLSSSLMode = SSLPrefer
	}
	mode := c.ClientTLSSSLMode
	haveCert := c.ClientTLSCertFile != "" && c.ClientTLSKeyFile != ""
	p.pair(c.ClientTLSCertFile, c.ClientTLSKeyFile, "client_tls_cert_file", "client_tls_key_file")
	if mode != SSLDisable && !haveCert {
		p.conflict("client_tls_sslmode", fmt.Sprintf("%s needs client_tls_cert_file and client_tls_key_file", mode),
			"client_tls_cert_file", "client_tls_key_file")
	}
	if mode.Verifies() && c.ClientTLSCAFile == "" {
		p.conflict("client_tls_sslmode", fmt.Sprintf("%s needs client_tls_ca_file to check client certificates", mode),
			"client_tls_ca_file")
	}
	if c.ClientTLSCertUserMap != CertUserMapNone && !mode.Verifies() {
		p.conflict("client_tls_cert_user_map", fmt.Sprintf("%s needs client_tls_sslmode verify-ca or verify-full, "+
			"so that clients present a checked certificate", c.ClientTLSCertUserMap), "client_tls_sslmode")
	}
	if c.ClientTLSCiphers != nil && c.ClientTLSProtocols.Min >= tls.VersionTLS13 {
		p.conflict("client_tls_ciphers", "has no effect when client_tls_protocols allows only TLS 1.3",
			"client_tls_protocols")
	}
}

func (p *parser) checkServerTLS(c *Config) {
	p.pair(c.ServerTLSCertFile, c.ServerTLSKeyFile, "server_tls_cert_file", "server_tls_key_file")
	if mode := c.ServerTLSSSLMode; mode.Verifies() && c.ServerTLSCAFile == "" {
		p.conflict("server_tls_sslmode", fmt.Sprintf("%s needs server_tls_ca_file to check PostgreSQL's certificate", mode),
			"server_tls_ca_file")
	}
}

// pair reports a certificate without its key or a key without its
// certificate, at the one that is set.
func (p *parser) pair(cert, key, certKey, keyKey string) {
	switch {
	case cert != "" && key == "":
		p.conflict(certKey, "is set but "+keyKey+" is not; set both", keyKey)
	case cert == "" && key != "":
		p.conflict(keyKey, "is set but "+certKey+" is not; set both", certKey)
	}
}
