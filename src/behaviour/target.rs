//! Where a call goes: another Thespian's address, checked and normalised
//! once, whichever front end named it.

use std::{fmt, sync::Arc};

/// Where a call goes: a Thespian's address, normalised to `http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target(Arc<str>);

impl Target {
    /// Builds a target from `http://host:port` or `host:port`, rejecting
    /// anything that is not a usable endpoint. Calls are plaintext HTTP/2,
    /// as a service mesh's sidecar expects; `https://` is refused rather
    /// than silently sent in the clear.
    pub fn parse(address: &str) -> Result<Target, String> {
        let with_scheme = crate::with_http_scheme(address.trim().trim_end_matches('/'));
        let uri: http::Uri = with_scheme
            .parse()
            .map_err(|e| format!("`{address}` is not a valid address: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "`{address}`: Thespian calls over plaintext HTTP/2 (TLS is left to a \
                     service mesh); use http://"
                ));
            }
            _ => return Err(format!("`{address}` must use http://")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{address}` has no host"))?;
        if authority.port_u16().is_none() {
            return Err(format!("`{address}` has no port"));
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(format!("`{address}` must not have a path"));
        }
        Ok(Target(with_scheme.into()))
    }

    /// Builds a target from the original config's separate address and port.
    pub fn from_parts(address: &str, port: u16) -> Result<Target, String> {
        let address = address.trim().trim_end_matches('/');
        let has_port = crate::with_http_scheme(address)
            .parse::<http::Uri>()
            .ok()
            .and_then(|uri| uri.authority().and_then(|a| a.port_u16()))
            .is_some();
        if has_port {
            return Err(format!(
                "`{address}` names a port; give the address without it, and the port as `service_port`"
            ));
        }
        Target::parse(&format!("{address}:{port}"))
    }

    /// The endpoint URI, `scheme://host:port`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host part, for `server.address`.
    pub fn host(&self) -> &str {
        let rest = self.0.split_once("://").map_or(&*self.0, |(_, r)| r);
        rest.rsplit_once(':').map_or(rest, |(h, _)| h)
    }

    /// The port, for `server.port`.
    pub fn port(&self) -> u16 {
        self.0
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_default()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_accept_the_forms_users_write() {
        assert_eq!(
            Target::parse("localhost:6379").unwrap().as_str(),
            "http://localhost:6379"
        );
        assert_eq!(
            Target::parse("http://db:7000/").unwrap().as_str(),
            "http://db:7000"
        );
        assert_eq!(
            Target::from_parts("http://localhost", 6379).unwrap().port(),
            6379
        );
        assert_eq!(Target::parse("http://db:7000").unwrap().host(), "db");
    }

    #[test]
    fn a_split_address_that_names_a_port_of_its_own_is_refused() {
        for address in ["http://localhost:7000", "db:7000"] {
            let refused = Target::from_parts(address, 6379).expect_err(address);
            assert!(refused.contains("service_port"), "{refused}");
        }
        assert_eq!(
            Target::from_parts("[::1]", 6379).unwrap().as_str(),
            "http://[::1]:6379"
        );
    }

    #[test]
    fn targets_without_a_port_or_with_odd_schemes_are_refused() {
        assert!(Target::parse("http://localhost").is_err());
        assert!(Target::parse("ftp://localhost:21").is_err());
        assert!(Target::parse("http://localhost:1/path").is_err());
    }
}
