//! Named helper objects (`authers`, `admissions`, `bypasses`, `hosts`, `resolvers`) and the
//! shared `auth` / `tls` sub-objects.

use serde::{Deserialize, Serialize};

use crate::{is_default, GoDuration};

/// Credentials: `{username, password}`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthConfig {
    /// User name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Password (never printed by `Debug`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// File whose first `user pass` line holds the credentials (client side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &"***")
            .field("file", &self.file)
            .finish()
    }
}

/// TLS settings (server or client side depending on where they appear).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cert_file: String,
    /// PEM private key file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_file: String,
    /// PEM CA file (server: require client certificates; client: trust roots).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    /// Client: verify the server certificate.
    #[serde(default, skip_serializing_if = "is_default")]
    pub secure: bool,
    /// Client: SNI / verification name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_name: String,
    /// Protocol options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<TlsOptionsConfig>,
    /// Validity of the generated certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<GoDuration>,
    /// Common name of the generated certificate.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub common_name: String,
    /// Organization of the generated certificate.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub organization: String,
}

/// `tls.options`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsOptionsConfig {
    /// `VersionTLS12` or `VersionTLS13`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub min_version: String,
    /// `VersionTLS12` or `VersionTLS13`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub max_version: String,
    /// Cipher suite names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    /// ALPN protocols.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
}

/// `file: {path}` source of a dynamic object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSourceConfig {
    /// File path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}

/// A named authenticator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutherConfig {
    /// Name.
    pub name: String,
    /// Inline users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auths: Vec<AuthConfig>,
    /// Re-read period for `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<GoDuration>,
    /// File with one `user password` per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSourceConfig>,
    /// Redis source (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<serde_json::Value>,
    /// HTTP source (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<serde_json::Value>,
    /// Plugin (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<serde_json::Value>,
}

/// A named matcher list: used by both `admissions` and `bypasses`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatcherListConfig {
    /// Name.
    pub name: String,
    /// Whitelist mode: only matches pass.
    #[serde(default, skip_serializing_if = "is_default")]
    pub whitelist: bool,
    /// Deprecated alias of `whitelist`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub reverse: bool,
    /// Network pre-filter (`tcp`/`udp`, bypasses only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
    /// Matchers: IPs, CIDRs, host names, `.domain`, `*.glob`, optional `:port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matchers: Vec<String>,
    /// Re-read period for `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<GoDuration>,
    /// File with one matcher per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSourceConfig>,
    /// Redis source (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<serde_json::Value>,
    /// HTTP source (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<serde_json::Value>,
    /// Plugin (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<serde_json::Value>,
}

/// `admissions[]` entry.
pub type AdmissionConfig = MatcherListConfig;
/// `bypasses[]` entry.
pub type BypassConfig = MatcherListConfig;

/// A named limiter: the one shape of `limiters` (traffic rate), `climiters` (concurrent
/// connections) and `rlimiters` (new connections per second).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimiterConfig {
    /// Name.
    pub name: String,
    /// Limit lines, `<scope> <value>…` with scope `$` (service), `$$` (each connection or
    /// client), an IP or a CIDR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<String>,
    /// Re-read period for `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<GoDuration>,
    /// File with one limit line per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSourceConfig>,
    /// Redis source (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<serde_json::Value>,
    /// HTTP source (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<serde_json::Value>,
    /// Plugin (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<serde_json::Value>,
}

/// A named static host mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostsConfig {
    /// Name.
    pub name: String,
    /// Mappings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mappings: Vec<HostMappingConfig>,
    /// Re-read period for `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<GoDuration>,
    /// `/etc/hosts`-style file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSourceConfig>,
    /// Redis source (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<serde_json::Value>,
    /// HTTP source (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<serde_json::Value>,
    /// Plugin (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<serde_json::Value>,
}

/// One host mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostMappingConfig {
    /// IP address.
    #[serde(default)]
    pub ip: String,
    /// Host name (`.example.com` = the domain and all subdomains).
    #[serde(default)]
    pub hostname: String,
    /// Aliases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// A named resolver.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResolverConfig {
    /// Name.
    pub name: String,
    /// Name servers tried in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<NameserverConfig>,
    /// Plugin (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<serde_json::Value>,
}

/// One name server of a resolver.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameserverConfig {
    /// `udp://h:p` (default scheme), `tcp://h:p`.
    pub addr: String,
    /// Chain for the queries (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// `ipv4` or `ipv6`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefer: String,
    /// EDNS client subnet (not supported yet).
    #[serde(default, rename = "clientIP", skip_serializing_if = "String::is_empty")]
    pub client_ip: String,
    /// TLS server name for DoH/DoT.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// Cache TTL override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<GoDuration>,
    /// Query timeout (default 5 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Serve stale entries while refreshing.
    #[serde(default, rename = "async", skip_serializing_if = "is_default")]
    pub is_async: bool,
    /// Only `ipv4` or `ipv6`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub only: String,
}

/// `api:`: the Web API server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiConfig {
    /// `host:port` or `unix:///path`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
    /// Prefix for every route, e.g. `/api`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path_prefix: String,
    /// One info log line per request.
    #[serde(default, skip_serializing_if = "is_default")]
    pub accesslog: bool,
    /// Basic auth user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Named auther.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auther: Option<String>,
}

/// `metrics:`: the Prometheus endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
    /// Path, default `/metrics`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Basic auth user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Named auther.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auther: Option<String>,
}

/// `log:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogConfig {
    /// `stderr` (default), `stdout`, `none`, or a file path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// `trace`, `debug`, `info` (default), `warn`, `error`, `fatal`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub level: String,
    /// `json` (default) or `text`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub format: String,
    /// File rotation (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<serde_json::Value>,
}

/// `profiling:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfilingConfig {
    /// Address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
}
