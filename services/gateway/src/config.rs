//! Settings read from `GATEWAY_*` environment variables (see docs/contracts.md).
//!
//! Every error names the variable at fault, so a misconfigured container says
//! exactly what to fix before it binds a port.

use std::{fmt, fs, io, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use http::Uri;
use thiserror::Error;

use crate::auth::ApiKeys;

/// What the rate limiter does when Redis cannot answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Let the request through without a limit.
    Open,
    /// Refuse the request with 503.
    Closed,
}

impl FailMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

impl FromStr for FailMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            other => Err(format!("expected `open` or `closed`, got `{other}`")),
        }
    }
}

impl fmt::Display for FailMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credential whose `Debug` output never shows the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{0} is required but not set")]
    Missing(&'static str),
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("{var}: cannot read {path}: {source}")]
    File {
        var: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        reason: reason.into(),
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Inference base URL, without a trailing slash.
    pub upstream_url: Uri,
    pub redis_url: String,
    /// Redis ACL user; without one the connection authenticates as `default`.
    pub redis_username: Option<String>,
    pub redis_password: Option<Secret>,
    pub api_keys: ApiKeys,
    pub rate_limit: u64,
    pub rate_window: Duration,
    pub fail_mode: FailMode,
    /// Most rate-limit tokens one Redis call reserves for a busy key; 1
    /// turns leasing off.
    pub rate_lease_max: u64,
    /// How long reserved tokens may be spent locally; also how recently
    /// Redis must have answered for a key for it to count as busy.
    pub rate_lease_ttl: Duration,
    pub max_body_bytes: usize,
    /// Answer requests a TLS-terminating proxy forwarded as plain HTTP
    /// (`X-Forwarded-Proto: http`) with a redirect to HTTPS.
    pub https_redirect: bool,
    pub upstream_timeout: Duration,
    /// Bound on establishing a TCP connection to the upstream: an unreachable
    /// upstream must fail fast rather than eat the whole request timeout.
    pub upstream_connect_timeout: Duration,
    /// Bound on one Redis round trip (rate-limit check or PING).
    pub redis_timeout: Duration,
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// Reserved tokens are spent at most this long after Redis counted them, so
/// the lease TTL bounds how far admissions may trail the count.
const MAX_LEASE_TTL: Duration = Duration::from_secs(1);

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process
    /// environment (which is shared between test threads).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &'static str| lookup(var).filter(|v| !v.trim().is_empty());
        let required = |var: &'static str| get(var).ok_or(ConfigError::Missing(var));

        let listen = parse_or(get("GATEWAY_LISTEN"), "GATEWAY_LISTEN", DEFAULT_LISTEN)?;
        let upstream_url = parse_upstream(&required("GATEWAY_UPSTREAM_URL")?)?;
        let redis_url = parse_redis_url(&required("GATEWAY_REDIS_URL")?)?;
        let redis_username = get("GATEWAY_REDIS_USERNAME").map(|name| name.trim().to_owned());
        if redis_username
            .as_deref()
            .is_some_and(|name| name.contains(char::is_whitespace))
        {
            return Err(invalid(
                "GATEWAY_REDIS_USERNAME",
                "must not contain whitespace",
            ));
        }
        let redis_password = get("GATEWAY_REDIS_PASSWORD_FILE")
            .map(|path| read_secret("GATEWAY_REDIS_PASSWORD_FILE", &path).map(Secret))
            .transpose()?;

        let keys_var = "GATEWAY_API_KEYS_FILE";
        let keys_path = required(keys_var)?;
        let api_keys = ApiKeys::from_lines(&read_secret(keys_var, &keys_path)?);
        if api_keys.is_empty() {
            return Err(invalid(keys_var, format!("{keys_path} holds no API key")));
        }

        let rate_limit: u64 = parse_or(get("GATEWAY_RATE_LIMIT"), "GATEWAY_RATE_LIMIT", "100")?;
        if rate_limit == 0 {
            return Err(invalid("GATEWAY_RATE_LIMIT", "must be at least 1"));
        }
        let window_secs: u64 = parse_or(
            get("GATEWAY_RATE_WINDOW_SECONDS"),
            "GATEWAY_RATE_WINDOW_SECONDS",
            "60",
        )?;
        if window_secs == 0 {
            return Err(invalid("GATEWAY_RATE_WINDOW_SECONDS", "must be at least 1"));
        }
        let fail_mode = parse_or(
            get("GATEWAY_RATE_LIMIT_FAIL_MODE"),
            "GATEWAY_RATE_LIMIT_FAIL_MODE",
            "open",
        )?;
        let rate_lease_max: u64 =
            parse_or(get("GATEWAY_RATE_LEASE_MAX"), "GATEWAY_RATE_LEASE_MAX", "8")?;
        if rate_lease_max == 0 {
            return Err(invalid(
                "GATEWAY_RATE_LEASE_MAX",
                "must be at least 1 (1 turns leasing off)",
            ));
        }
        let rate_lease_ttl = millis(&get, "GATEWAY_RATE_LEASE_MS", "100")?;
        if rate_lease_ttl > MAX_LEASE_TTL {
            return Err(invalid(
                "GATEWAY_RATE_LEASE_MS",
                format!("must be at most {} ms", MAX_LEASE_TTL.as_millis()),
            ));
        }
        let max_body_bytes: usize = parse_or(
            get("GATEWAY_MAX_BODY_BYTES"),
            "GATEWAY_MAX_BODY_BYTES",
            "1048576",
        )?;
        if max_body_bytes == 0 {
            return Err(invalid("GATEWAY_MAX_BODY_BYTES", "must be at least 1"));
        }

        Ok(Self {
            listen,
            upstream_url,
            redis_url,
            redis_username,
            redis_password,
            api_keys,
            rate_limit,
            rate_window: Duration::from_secs(window_secs),
            fail_mode,
            rate_lease_max,
            rate_lease_ttl,
            max_body_bytes,
            https_redirect: parse_or(
                get("GATEWAY_HTTPS_REDIRECT"),
                "GATEWAY_HTTPS_REDIRECT",
                "false",
            )?,
            upstream_timeout: millis(&get, "GATEWAY_UPSTREAM_TIMEOUT_MS", "5000")?,
            upstream_connect_timeout: millis(&get, "GATEWAY_UPSTREAM_CONNECT_TIMEOUT_MS", "1000")?,
            redis_timeout: millis(&get, "GATEWAY_REDIS_TIMEOUT_MS", "250")?,
        })
    }
}

fn parse_or<T>(value: Option<String>, var: &'static str, default: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    let raw = value.unwrap_or_else(|| default.to_owned());
    raw.trim()
        .parse()
        .map_err(|e: T::Err| invalid(var, format!("`{}`: {e}", raw.trim())))
}

fn millis(
    get: &impl Fn(&'static str) -> Option<String>,
    var: &'static str,
    default: &str,
) -> Result<Duration, ConfigError> {
    let ms: u64 = parse_or(get(var), var, default)?;
    if ms == 0 {
        return Err(invalid(var, "must be at least 1 ms"));
    }
    Ok(Duration::from_millis(ms))
}

fn parse_upstream(raw: &str) -> Result<Uri, ConfigError> {
    const VAR: &str = "GATEWAY_UPSTREAM_URL";
    let trimmed = raw.trim().trim_end_matches('/');
    let uri: Uri = trimmed
        .parse()
        .map_err(|e| invalid(VAR, format!("`{trimmed}`: {e}")))?;
    // Inference sits inside the platform's network; the gateway speaks plain
    // HTTP to it and terminates nothing else.
    if uri.scheme_str() != Some("http") {
        return Err(invalid(VAR, format!("`{trimmed}`: scheme must be http")));
    }
    if uri.authority().is_none() {
        return Err(invalid(VAR, format!("`{trimmed}`: no host")));
    }
    if uri.query().is_some() {
        return Err(invalid(VAR, format!("`{trimmed}`: must not carry a query")));
    }
    Ok(uri)
}

fn parse_redis_url(raw: &str) -> Result<String, ConfigError> {
    const VAR: &str = "GATEWAY_REDIS_URL";
    let url = raw.trim();
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| invalid(VAR, format!("`{url}`: scheme must be redis://")))?;
    // The password travels in GATEWAY_REDIS_PASSWORD_FILE; one embedded in the
    // URL would sit in plain sight in the environment.
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(invalid(
            VAR,
            "must not carry credentials; use GATEWAY_REDIS_PASSWORD_FILE",
        ));
    }
    if authority.is_empty() {
        return Err(invalid(VAR, format!("`{url}`: no host")));
    }
    Ok(url.to_owned())
}

/// Reads a secret file, stripping one trailing newline (docs/contracts.md).
fn read_secret(var: &'static str, path: &str) -> Result<String, ConfigError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigError::File {
        var,
        path: PathBuf::from(path),
        source,
    })?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, io::Write};

    use super::*;

    fn keys_file(content: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content.as_bytes()).unwrap();
        file
    }

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    fn base(keys: &str) -> Vec<(&'static str, &str)> {
        vec![
            ("GATEWAY_UPSTREAM_URL", "http://inference:3000/"),
            ("GATEWAY_REDIS_URL", "redis://redis:6379/1"),
            ("GATEWAY_API_KEYS_FILE", keys),
        ]
    }

    #[test]
    fn defaults_follow_the_contract() {
        let keys = keys_file("k1\n\n  k2  \n");
        let config = load(&base(keys.path().to_str().unwrap())).unwrap();
        assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.upstream_url, "http://inference:3000");
        assert_eq!(config.api_keys.len(), 2);
        assert_eq!(config.rate_limit, 100);
        assert_eq!(config.rate_window, Duration::from_secs(60));
        assert_eq!(config.fail_mode, FailMode::Open);
        assert_eq!(config.rate_lease_max, 8);
        assert_eq!(config.rate_lease_ttl, Duration::from_millis(100));
        assert_eq!(config.max_body_bytes, 1_048_576);
        assert_eq!(config.upstream_timeout, Duration::from_millis(5000));
        assert!(config.redis_password.is_none());
        assert!(config.redis_username.is_none());
    }

    #[test]
    fn redis_username_is_read_and_checked() {
        let keys = keys_file("k1\n");
        let mut vars = base(keys.path().to_str().unwrap());
        vars.push(("GATEWAY_REDIS_USERNAME", "gateway"));
        let config = load(&vars).unwrap();
        assert_eq!(config.redis_username.as_deref(), Some("gateway"));
        vars.pop();
        vars.push(("GATEWAY_REDIS_USERNAME", "two words"));
        let err = load(&vars).unwrap_err().to_string();
        assert!(err.contains("GATEWAY_REDIS_USERNAME"), "{err}");
    }

    #[test]
    fn errors_name_the_variable() {
        let keys = keys_file("k1\n");
        let path = keys.path().to_str().unwrap();
        let cases: &[(&str, &str, &str)] = &[
            ("GATEWAY_RATE_LIMIT", "0", "GATEWAY_RATE_LIMIT"),
            ("GATEWAY_RATE_LIMIT", "many", "GATEWAY_RATE_LIMIT"),
            (
                "GATEWAY_RATE_LIMIT_FAIL_MODE",
                "ajar",
                "GATEWAY_RATE_LIMIT_FAIL_MODE",
            ),
            ("GATEWAY_UPSTREAM_URL", "https://x", "GATEWAY_UPSTREAM_URL"),
            (
                "GATEWAY_REDIS_URL",
                "redis://:pw@r:6379",
                "GATEWAY_REDIS_URL",
            ),
            ("GATEWAY_REDIS_URL", "http://r:6379", "GATEWAY_REDIS_URL"),
            ("GATEWAY_LISTEN", "8080", "GATEWAY_LISTEN"),
            ("GATEWAY_RATE_LEASE_MAX", "0", "GATEWAY_RATE_LEASE_MAX"),
            ("GATEWAY_RATE_LEASE_MAX", "-1", "GATEWAY_RATE_LEASE_MAX"),
            ("GATEWAY_RATE_LEASE_MS", "0", "GATEWAY_RATE_LEASE_MS"),
            ("GATEWAY_RATE_LEASE_MS", "1001", "GATEWAY_RATE_LEASE_MS"),
            (
                "GATEWAY_UPSTREAM_TIMEOUT_MS",
                "0",
                "GATEWAY_UPSTREAM_TIMEOUT_MS",
            ),
            (
                "GATEWAY_REDIS_PASSWORD_FILE",
                "/nonexistent/pw",
                "GATEWAY_REDIS_PASSWORD_FILE",
            ),
        ];
        for (var, value, expected) in cases {
            let mut vars = base(path);
            vars.retain(|(k, _)| k != var);
            vars.push((var, value));
            let err = load(&vars).expect_err(var).to_string();
            assert!(err.starts_with(expected), "{var}={value}: {err}");
        }
    }

    #[test]
    fn required_variables_are_reported() {
        let err = load(&[]).unwrap_err();
        assert!(matches!(err, ConfigError::Missing("GATEWAY_UPSTREAM_URL")));
        let empty = keys_file("\n\n");
        let err = load(&base(empty.path().to_str().unwrap())).unwrap_err();
        assert!(err.to_string().contains("no API key"), "{err}");
    }

    #[test]
    fn secret_files_lose_one_trailing_newline() {
        let keys = keys_file("k1\n");
        let password = keys_file("s3cret\n");
        let mut vars = base(keys.path().to_str().unwrap());
        vars.push((
            "GATEWAY_REDIS_PASSWORD_FILE",
            password.path().to_str().unwrap(),
        ));
        let config = load(&vars).unwrap();
        assert_eq!(
            config.redis_password.as_ref().map(Secret::expose),
            Some("s3cret")
        );
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
