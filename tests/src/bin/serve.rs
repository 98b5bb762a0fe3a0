//! `serve mariadb`: starts one of the tests' servers for `cargo xtask bench` (or by hand),
//! prints `port=N`, and stops it when its standard input closes.

use std::io::Read as _;

use scalpels_tests::servers::{self, SQL_DATABASE, SQL_PASSWORD, SQL_USER};

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let port = match which.as_str() {
        "mariadb" => servers::mariadb().port,
        "postgres" => servers::postgres().port,
        other => {
            eprintln!("usage: serve mariadb|postgres (not {other:?})");
            std::process::exit(2);
        }
    };
    println!("port={port} user={SQL_USER} password={SQL_PASSWORD} database={SQL_DATABASE}");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
