//! Secrets are taken out of command lines before they are stored: services are often started
//! with passwords and tokens in argv (`--db-password=...`, `transport_url=rabbit://u:pw@host`),
//! and a run is copied around and read by people who must not learn them.
//!
//! Replaced by `***`, unless `--keep-cmdline`:
//! - the value of a long option whose name has a secret-like word: `--db-password=X`,
//!   `--password X` (the next argument, unless it is an option), `--os-auth-token=X`,
//!   `--api-key X`;
//! - the value of an environment-style `NAME=VALUE` argument with such a name: `OS_PASSWORD=X`;
//! - the password of a URL anywhere in an argument: `mysql+pymysql://nova:***@db/nova`.
//!
//! Secret-like: a name containing `password`, `passwd`, `passphrase`, `secret`, `token` or
//! `credential`, or whose last word is `key`, `pass` or `pwd` or ends in `key` (`--api-key`,
//! `--apikey`, `--db-pass`). Only the last word counts for the short ones, so names of things
//! that are not secrets keep their values: `--key-name mykeypair`, `--key-file /etc/x.pem`,
//! `--pass-through`. A secret given by a short option (`-p X`) cannot be told from any other
//! short option and is kept.

/// A name containing one of these (in any word) names a secret.
const SECRET_WORDS: [&str; 6] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
];

/// What a secret is replaced with.
const REDACTED: &str = "***";

/// `argv` as it is stored: with its secrets replaced unless `keep` (`--keep-cmdline`).
pub fn stored(argv: Vec<String>, keep: bool) -> Vec<String> {
    if keep { argv } else { redact(argv) }
}

/// `argv` with its secrets replaced by `***`.
fn redact(argv: Vec<String>) -> Vec<String> {
    let mut value_follows = false;
    argv.into_iter()
        .map(|arg| {
            if std::mem::take(&mut value_follows) && !arg.starts_with('-') {
                return REDACTED.to_owned();
            }
            if let Some(option) = arg.strip_prefix("--") {
                match option.split_once('=') {
                    Some((name, _)) if secret_name(name) => return format!("--{name}={REDACTED}"),
                    Some(_) => {}
                    None => value_follows = secret_name(option),
                }
            } else if let Some((name, _)) = arg.split_once('=')
                && !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                && secret_name(name)
            {
                return format!("{name}={REDACTED}");
            }
            redact_urls(&arg)
        })
        .collect()
}

/// Whether an option or variable name says its value is a secret (see the module's doc).
fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let words: Vec<&str> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words
        .iter()
        .any(|w| SECRET_WORDS.iter().any(|secret| w.contains(secret)))
        || words
            .last()
            .is_some_and(|w| w.ends_with("key") || matches!(*w, "pass" | "pwd"))
}

/// `text` with the password of every `scheme://user:password@host` in it replaced. A URL
/// may list several hosts (oslo.messaging's `rabbit://u:p@h1,u:p@h2/`): each one's.
fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(after.len());
        let (authority, tail) = after.split_at(end);
        let hosts: Vec<String> = authority.split(',').map(redact_userinfo).collect();
        out.push_str(&hosts.join(","));
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// `user:password@host` as `user:***@host`; anything else as it is.
fn redact_userinfo(authority: &str) -> String {
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(argv: &[&str]) -> Vec<String> {
        redact(argv.iter().map(|a| a.to_string()).collect())
    }

    #[test]
    fn secret_options_lose_their_values() {
        assert_eq!(
            redacted(&["nova-manage", "--db-password=hunter2", "db", "sync"]),
            ["nova-manage", "--db-password=***", "db", "sync"]
        );
        assert_eq!(
            redacted(&["mysql", "--password", "hunter2", "-h", "db"]),
            ["mysql", "--password", "***", "-h", "db"]
        );
        assert_eq!(
            redacted(&["openstack", "--os-auth-token=abc", "server", "list"]),
            ["openstack", "--os-auth-token=***", "server", "list"]
        );
        assert_eq!(
            redacted(&[
                "x",
                "--api-key",
                "k1",
                "--apikey=k2",
                "--client_secret",
                "s"
            ]),
            [
                "x",
                "--api-key",
                "***",
                "--apikey=***",
                "--client_secret",
                "***"
            ]
        );
        assert_eq!(
            redacted(&["x", "--DB-PASS", "p"]),
            ["x", "--DB-PASS", "***"]
        );
        // A flag, not an option with a value: what follows is kept.
        assert_eq!(
            redacted(&["docker", "login", "--password-stdin", "--username", "u"]),
            ["docker", "login", "--password-stdin", "--username", "u"]
        );
        // Nothing follows.
        assert_eq!(redacted(&["x", "--token"]), ["x", "--token"]);
    }

    #[test]
    fn environment_style_arguments_lose_their_values() {
        assert_eq!(
            redacted(&["env", "OS_PASSWORD=x", "OS_USERNAME=admin", "nova", "list"]),
            [
                "env",
                "OS_PASSWORD=***",
                "OS_USERNAME=admin",
                "nova",
                "list"
            ]
        );
        assert_eq!(
            redacted(&["app", "db.password=x", "AWS_SECRET_ACCESS_KEY=y"]),
            ["app", "db.password=***", "AWS_SECRET_ACCESS_KEY=***"]
        );
        // Not a name before the `=`: an expression, kept.
        assert_eq!(redacted(&["sh", "-c", "a b=1"]), ["sh", "-c", "a b=1"]);
    }

    #[test]
    fn url_passwords_are_replaced() {
        assert_eq!(
            redacted(&["x", "transport_url=rabbit://openstack:pw@ctl:5672/"]),
            ["x", "transport_url=rabbit://openstack:***@ctl:5672/"]
        );
        assert_eq!(
            redacted(&[
                "x",
                "--connection=mysql+pymysql://nova:s3cr@t@db/nova?charset=utf8"
            ]),
            [
                "x",
                "--connection=mysql+pymysql://nova:***@db/nova?charset=utf8"
            ]
        );
        assert_eq!(
            redacted(&["x", "rabbit://a:p1@h1:5672,b:p2@h2:5672/vhost"]),
            ["x", "rabbit://a:***@h1:5672,b:***@h2:5672/vhost"]
        );
        assert_eq!(
            redacted(&["x", "--urls", "http://u:p@a/ https://b/c http://user@d/"]),
            ["x", "--urls", "http://u:***@a/ https://b/c http://user@d/"]
        );
    }

    #[test]
    fn other_arguments_are_kept() {
        let kept = [
            "nova-compute",
            "--config-file",
            "/etc/nova/nova.conf",
            "--key-name",
            "mykeypair",
            "--key-file=/etc/ssl/x.pem",
            "--keystone-url",
            "http://ctl:5000/v3",
            "-p",
            "8774",
            "PATH=/usr/bin",
        ];
        assert_eq!(redacted(&kept), kept);
    }
}
