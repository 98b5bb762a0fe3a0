//! A connection's addresses as the kernel announced them, formatted as the table shows them.

use std::net::{Ipv4Addr, Ipv6Addr};

use tracers::protocols::{ConnEvent, family};

/// A connection's addresses, formatted as the table shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ends {
    pub family: &'static str,
    pub local: String,
    pub remote: String,
    pub local_port: u16,
    pub remote_port: u16,
}

fn address(sock_family: u16, bytes: &[u8], port: u16) -> String {
    match sock_family {
        family::INET => match <[u8; 4]>::try_from(bytes) {
            Ok(ip) => format!("{}:{port}", Ipv4Addr::from(ip)),
            Err(_) => String::new(),
        },
        family::INET6 => match <[u8; 16]>::try_from(bytes) {
            Ok(ip) => format!("[{}]:{port}", Ipv6Addr::from(ip)),
            Err(_) => String::new(),
        },
        // An abstract name starts with a NUL, shown as '@' like ss(8) does; a path may be
        // NUL-terminated within its length.
        _ => match bytes.split_first() {
            Some((0, name)) => format!("@{}", String::from_utf8_lossy(name)),
            _ => {
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                String::from_utf8_lossy(&bytes[..end]).into_owned()
            }
        },
    }
}

impl Ends {
    pub fn of(event: &ConnEvent) -> Self {
        let local = &event.local[..usize::from(event.local_len).min(event.local.len())];
        let remote = &event.remote[..usize::from(event.remote_len).min(event.remote.len())];
        Self {
            family: match event.family {
                family::INET => "ipv4",
                family::INET6 => "ipv6",
                _ => "unix",
            },
            local: address(event.family, local, event.local_port),
            remote: address(event.family, remote, event.remote_port),
            local_port: event.local_port,
            remote_port: event.remote_port,
        }
    }

    /// Ends of a connection whose announcement was lost.
    pub fn unknown() -> Self {
        Self {
            family: "unknown",
            ..Self::default()
        }
    }

    /// The (local, remote) ports, for families that have them.
    pub fn ports(&self) -> (Option<u16>, Option<u16>) {
        match self.family {
            "ipv4" | "ipv6" => (Some(self.local_port), Some(self.remote_port)),
            _ => (None, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sock_family: u16, local: &[u8], remote: &[u8]) -> ConnEvent {
        let mut event = ConnEvent {
            kind: 1,
            tgid: 10,
            fd: 3,
            role: 1,
            conn: 100,
            time_ns: 100,
            family: sock_family,
            sock_type: 1,
            local_port: 40000,
            remote_port: 3306,
            local_len: local.len() as u16,
            remote_len: remote.len() as u16,
            _pad: 0,
            local: [0; 108],
            remote: [0; 108],
        };
        event.local[..local.len()].copy_from_slice(local);
        event.remote[..remote.len()].copy_from_slice(remote);
        event
    }

    #[test]
    fn addresses_are_formatted_per_family() {
        let ends = Ends::of(&event(family::INET, &[127, 0, 0, 1], &[10, 1, 2, 3]));
        assert_eq!(
            (ends.family, ends.local.as_str(), ends.remote.as_str()),
            ("ipv4", "127.0.0.1:40000", "10.1.2.3:3306")
        );
        assert_eq!(ends.ports(), (Some(40000), Some(3306)));
        let mut loopback = [0u8; 16];
        loopback[15] = 1;
        let ends = Ends::of(&event(family::INET6, &loopback, &loopback));
        assert_eq!(ends.remote, "[::1]:3306");
        let ends = Ends::of(&event(family::UNIX, b"", b"/run/mysqld/mysqld.sock\0"));
        assert_eq!(
            (ends.family, ends.local.as_str(), ends.remote.as_str()),
            ("unix", "", "/run/mysqld/mysqld.sock")
        );
        assert_eq!(ends.ports(), (None, None));
        assert_eq!(
            Ends::of(&event(family::UNIX, b"\0abstract", b"")).local,
            "@abstract"
        );
    }
}
