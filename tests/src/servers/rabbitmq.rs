//! RabbitMQ (`rabbitmq-server`), run as root with every directory, port and the Erlang
//! node name of its own, so it never meets the packaged broker or another test binary's.
//! Erlang's port mapper (epmd) normally daemonizes and outlives the broker: here it is
//! started in the foreground on a port of its own, as a child stopped like the broker.
//! Besides plain AMQP it listens for AMQP over TLS (amqps), with a certificate the set-up
//! makes.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::process;

pub struct RabbitMq {
    pub port: u16,
    /// Where it speaks AMQP over TLS.
    pub tls_port: u16,
    /// The certificate it presents there, which TLS clients trust.
    pub certificate: PathBuf,
    pub pid: u32,
    /// How long the broker took to accept AMQP connections.
    pub startup: Duration,
    pub log: PathBuf,
}

/// The start script is the broker's parent (it traps SIGTERM and stops the Erlang VM); on
/// a normal exit the script and the VM share a process group that is killed at once.
const STOP: process::Stop = process::Stop {
    on_parent_death: libc::SIGTERM,
    at_exit: libc::SIGKILL,
};

const START_SCRIPT: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// Boot attempts: on a loaded machine the broker has been seen to die while booting (its
/// write-ahead log supervisor), once in several starts; a second boot in a fresh directory
/// has always come up.
const ATTEMPTS: usize = 2;

impl RabbitMq {
    pub(super) fn start() -> RabbitMq {
        let mut failures = Vec::new();
        for attempt in 1..=ATTEMPTS {
            match Self::boot() {
                Ok(server) => return server,
                Err(why) => {
                    eprintln!("servers: rabbitmq boot {attempt} of {ATTEMPTS} failed: {why}");
                    failures.push(why);
                }
            }
        }
        panic!("rabbitmq did not start: {}", failures.join("\n\n"));
    }

    fn boot() -> Result<RabbitMq, String> {
        let started = Instant::now();
        let dir = process::server_dir("rabbitmq");
        let [port, tls_port, dist_port, epmd_port] = super::free_ports();
        let epmd_log = std::fs::File::create(dir.join("epmd.log")).expect("epmd log");
        let mut epmd = Command::new("epmd");
        epmd.args(["-port", &epmd_port.to_string(), "-address", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(epmd_log.try_clone().expect("dup epmd log"))
            .stderr(epmd_log);
        let epmd = process::spawn(epmd, process::KILL).expect("epmd (erlang-base) starts");
        super::wait_ready(
            "epmd",
            epmd,
            &dir.join("epmd.log"),
            Duration::from_secs(10),
            || super::first_reply(epmd_port, b"\x00\x01n").len() >= 4,
            started,
        );

        let log = dir.join("rabbit.log");
        let enabled_plugins = dir.join("enabled_plugins");
        std::fs::write(&enabled_plugins, "[].\n").expect("write enabled_plugins");
        let (certificate, key) = crate::tls_certificate(&dir);
        let config = dir.join("rabbitmq.conf");
        std::fs::write(
            &config,
            format!(
                "listeners.ssl.1 = 127.0.0.1:{tls_port}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n",
                certificate.display(),
                key.display()
            ),
        )
        .expect("write rabbitmq.conf");
        let output = std::fs::File::create(dir.join("rabbitmq-server.out")).expect("output file");
        let path = |name: &str| dir.join(name).display().to_string();
        let node = format!("scalpels-test-{}@localhost", std::process::id());
        let mut cmd = Command::new(START_SCRIPT);
        cmd.current_dir(&dir)
            // The Erlang cookie is written to $HOME.
            .env("HOME", &dir)
            .env("RABBITMQ_CONF_ENV_FILE", "/dev/null")
            .env("RABBITMQ_CONFIG_FILE", &config)
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", path("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", &enabled_plugins)
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", path("plugins"))
            .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
            .env("RABBITMQ_LOG_BASE", path("log"))
            .env("RABBITMQ_LOGS", &log)
            .env("RABBITMQ_PID_FILE", path("rabbitmq.pid"))
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("dup output file"))
            .stderr(output);
        let pid = process::spawn(cmd, STOP).expect("rabbitmq-server starts");
        // An AMQP 0-9-1 client opens with this header; a broker that has finished booting
        // answers with a method frame (type 1, Connection.Start).
        let startup = super::poll_ready(
            "rabbitmq",
            pid,
            &log,
            Duration::from_secs(120),
            || super::first_reply(port, b"AMQP\x00\x00\x09\x01").first() == Some(&1),
            started,
        )?;
        Ok(RabbitMq {
            port,
            tls_port,
            certificate,
            pid,
            startup,
            log,
        })
    }

    /// The oslo.messaging transport URL (the default `guest` account, which RabbitMQ admits
    /// from loopback only).
    pub fn transport_url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:{}/", self.port)
    }

    /// The same over TLS: the URL of the TLS listener (oslo.messaging's `ssl` option, with
    /// [`RabbitMq::certificate`] as its CA, turns TLS on).
    pub fn tls_transport_url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:{}/", self.tls_port)
    }
}
