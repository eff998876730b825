//! `posbon nats-config` (a least-privilege nats-server configuration and one
//! credentials file per user) and `posbon nats-streams` (the admin creates
//! or updates Posbon's streams). The permissions themselves live in
//! `posbon_bus::nats_permissions`.

use std::path::Path;

use anyhow::Context as _;
use posbon_bus::nats_permissions::{NatsRole, ServerOptions, ServerTls, new_user, server_config};
use posbon_bus::{Bus as _, NatsBus, NatsConfig};

use crate::cli::{NatsConfigArgs, NatsStreamsArgs};
use crate::ops::say;

/// `posbon nats-config`.
pub(crate) fn nats_config(args: NatsConfigArgs, quiet: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=256).contains(&args.escalator_shards),
        "--escalator-shards must be 1 to 256"
    );
    let conf_path = args.out.join("nats.conf");
    anyhow::ensure!(
        !conf_path.exists(),
        "{} exists: new keys would lock out every client of the old configuration; choose \
         another --out or remove it",
        conf_path.display()
    );
    let tls = match &args.tls_dir {
        None => None,
        Some(dir) => {
            let file = |name: &str| -> anyhow::Result<String> {
                let path = dir.join(name);
                anyhow::ensure!(
                    path.is_file(),
                    "--tls-dir {}: {name} is missing (the server's certificate is server.pem, \
                     its key server-key.pem; with ca.pem, clients must present a certificate it signed)",
                    dir.display()
                );
                Ok(absolute(&path)?.display().to_string())
            };
            let ca = dir.join("ca.pem");
            Some(ServerTls {
                cert_file: file("server.pem")?,
                key_file: file("server-key.pem")?,
                ca_file: if ca.is_file() {
                    Some(absolute(&ca)?.display().to_string())
                } else {
                    None
                },
            })
        }
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut users = Vec::new();
    for role in NatsRole::ALL {
        let (user, seed) = new_user(role);
        let path = args.out.join(format!("{}.nk", role.user()));
        posbon_auth::secret::write_secret_file(
            &path,
            posbon_bus::seed_file_text(&seed, role.user(), &role.inbox_prefix()).trim_end(),
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
        users.push(user);
    }
    let options = ServerOptions {
        listen: args.listen.clone(),
        store_dir: args.store_dir.clone(),
        escalator_shards: args.escalator_shards,
        sync_always: args.sync_always,
        tls,
    };
    std::fs::write(&conf_path, server_config(&options, &users))
        .with_context(|| format!("cannot write {}", conf_path.display()))?;
    if !quiet {
        eprintln!(
            "{}",
            say("cli.nats_written", &[("file", &conf_path.display())])
        );
        for role in NatsRole::ALL {
            eprintln!(
                "  {:<16} {}",
                role.user(),
                args.out.join(format!("{}.nk", role.user())).display()
            );
        }
        eprintln!(
            "{}",
            say(
                "cli.nats_next",
                &[
                    ("file", &conf_path.display()),
                    ("admin", &args.out.join("admin.nk").display())
                ]
            )
        );
    }
    Ok(())
}

fn absolute(path: &Path) -> anyhow::Result<std::path::PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// `posbon nats-streams`.
pub(crate) fn nats_streams(args: NatsStreamsArgs, quiet: bool) -> anyhow::Result<()> {
    let urls: Vec<String> = args
        .nats
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let config = NatsConfig {
        credentials_file: args.nats_creds.clone(),
        manage_streams: Some(true),
        replicas: args.replicas,
        ..NatsConfig::default()
    };
    let options = config.options("posbon-nats-streams")?;
    crate::ops::runtime()?.block_on(async {
        let bus = NatsBus::connect(urls, options).await?;
        let streams = posbon_bus::default_streams();
        bus.ensure_streams(&streams).await?;
        if !quiet {
            for stream in &streams {
                let info = bus.stream_info(&stream.name).await?;
                eprintln!(
                    "{}",
                    say(
                        "cli.stream",
                        &[
                            ("name", &format!("{:<8}", stream.name)),
                            ("messages", &info.messages),
                            ("subjects", &stream.subjects.join(" ")),
                        ]
                    )
                );
            }
        }
        anyhow::Ok(())
    })
}
