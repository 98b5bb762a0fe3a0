//! `serve mariadb|postgres|rabbitmq`: starts one of the tests' servers for `cargo xtask bench`
//! (or by hand), prints `port=N` and the account to use (`user=U password=P database=D`, or for
//! RabbitMQ `vhost=V`), and stops it when its standard input closes.

use std::io::Read as _;

use scalpels_tests::servers::{self, SQL_DATABASE, SQL_PASSWORD, SQL_USER};

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let sql = |port: u16| {
        format!("port={port} user={SQL_USER} password={SQL_PASSWORD} database={SQL_DATABASE}")
    };
    let line = match which.as_str() {
        "mariadb" => sql(servers::mariadb().port),
        "postgres" => sql(servers::postgres().port),
        // The default account, which RabbitMQ admits from loopback only.
        "rabbitmq" => format!(
            "port={} user=guest password=guest vhost=/",
            servers::rabbitmq().port
        ),
        other => {
            eprintln!("usage: serve mariadb|postgres|rabbitmq (not {other:?})");
            std::process::exit(2);
        }
    };
    println!("{line}");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
