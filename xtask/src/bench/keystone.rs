//! The real OpenStack Keystone of the service benchmarks: deployed once per bench (its
//! configuration, database, keys and bootstrap), then served afresh by gunicorn for each run.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use super::process::TestServer;
use crate::{cmd, root, setup};

/// The bootstrap administrator's password; xtask/bench/load.lua's `keystone` mix logs in with it.
const ADMIN_PASSWORD: &str = "bench-password";

/// Creates Keystone's database on the bench's MariaDB as the test account, whose grants
/// cover the databases named after its own with a suffix (tests/src/servers/mariadb.rs).
const CREATE_DATABASE: &str = "import sys, pymysql\n\
    port, user, password, database = sys.argv[1:]\n\
    connection = pymysql.connect(host='127.0.0.1', port=int(port), user=user, \
    password=password, ssl_disabled=True)\n\
    connection.cursor().execute(f'CREATE DATABASE {database}')";

/// Installs Keystone if needed and deploys it in `dir`: keystone.conf on the bench's MariaDB
/// (a database of its own) and RabbitMQ (`transport_url`), Fernet token and credential keys,
/// the schema, and the bootstrap's admin user, project, role, region and public endpoint.
/// Returns the configuration directory gunicorn's workers read (OS_KEYSTONE_CONFIG_DIR).
pub fn deploy(dir: &Path, mariadb: &TestServer, transport_url: &str) -> Result<PathBuf> {
    let python = setup::keystone_venv()?;
    let [port, user, password, database] = &mariadb.credentials[..] else {
        bail!("the MariaDB server gave no credentials");
    };
    let database = format!("{database}_keystone");
    cmd::run(
        Command::new(&python)
            .args(["-c", CREATE_DATABASE])
            .args([port, user, password, &database]),
    )?;
    let config_dir = dir.join("etc");
    fs::create_dir_all(&config_dir)
        .with_context(|| format!("creating {}", config_dir.display()))?;
    let config = config_dir.join("keystone.conf");
    fs::write(
        &config,
        format!(
            "[DEFAULT]\n\
             log_file = {log}\n\
             [database]\n\
             # In clear, as the other services' series.\n\
             connection = mysql+pymysql://{user}:{password}@127.0.0.1:{port}/{database}\
             ?ssl_disabled=true\n\
             [cache]\n\
             # Deployed keystones cache (memcached, by every installer's default): without it\n\
             # a token validation is some 80 SELECTs. Each worker's memory here.\n\
             enabled = true\n\
             backend = dogpile.cache.memory\n\
             [token]\n\
             provider = fernet\n\
             [fernet_tokens]\n\
             key_repository = {fernet}\n\
             [credential]\n\
             key_repository = {credential}\n\
             [oslo_messaging_notifications]\n\
             driver = messagingv2\n\
             transport_url = {transport_url}\n",
            log = dir.join("keystone.log").display(),
            fernet = dir.join("fernet-keys").display(),
            credential = dir.join("credential-keys").display(),
        ),
    )
    .with_context(|| format!("writing {}", config.display()))?;
    let manage = |args: &[&str]| {
        cmd::run(
            Command::new(python.with_file_name("keystone-manage"))
                .arg("--config-file")
                .arg(&config)
                .args(args),
        )
    };
    // The keys belong to the user the workers run as: the bench's, root.
    let owner = ["--keystone-user", "root", "--keystone-group", "root"];
    manage(&[&["fernet_setup"][..], &owner].concat())?;
    manage(&[&["credential_setup"][..], &owner].concat())?;
    manage(&["db_sync"])?;
    // The endpoint is the catalogue's entry only: each run serves on a free port of its own.
    manage(&[
        "bootstrap",
        "--bootstrap-password",
        ADMIN_PASSWORD,
        "--bootstrap-region-id",
        "RegionOne",
        "--bootstrap-public-url",
        "http://127.0.0.1:5000/v3",
    ])?;
    Ok(config_dir)
}

/// gunicorn serving the deployment of `config_dir` on `port`, as the OpenStack-like API is
/// served: 2 sync workers.
pub fn gunicorn(config_dir: &Path, port: u16, run_dir: &Path) -> Command {
    let mut gunicorn = Command::new(setup::keystone_venv_python().with_file_name("gunicorn"));
    gunicorn
        .args(["--workers", "2", "--worker-class", "sync", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--chdir")
        .arg(root().join("xtask/bench"))
        .arg("keystone_wsgi:application")
        .env("OS_KEYSTONE_CONFIG_DIR", config_dir)
        // gunicorn ≥ 25.1 opens a control socket there (by default in $HOME).
        .env("XDG_RUNTIME_DIR", run_dir);
    gunicorn
}
