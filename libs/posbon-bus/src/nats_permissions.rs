//! Least privilege on the bus: the subjects each Posbon user of NATS may
//! publish and subscribe to, and a nats-server configuration that grants
//! exactly that (`posbon nats-config`).
//!
//! One nkey user per service and per producer class. Every user receives
//! replies only on its own inbox (`_INBOX.<user>.>`, so nobody reads another
//! user's deliveries), acks only its own durable consumers, and calls only
//! the JetStream API requests its work needs. Producers may publish only
//! `posbon.ingest.<their kind>`; only ingest publishes `posbon.events.>`;
//! only the escalator and the API (lifecycle updates) publish alerts; only
//! the admin user may create, update, purge or delete streams, so services
//! check at start that the streams exist (`nats.manage_streams` off) and the
//! admin creates them (`posbon nats-streams`). Allow lists only: a deny on
//! subscriptions would be checked against the original subject of a
//! JetStream delivery and could drop it silently.

use std::fmt::Write as _;

use crate::subjects::{
    ACTIONS_STREAM, ALERTS_STREAM, API_ACTIONS_DURABLE, API_ALERTS_DURABLE, API_NOTIFY_DURABLE,
    DLQ_STREAM, ESCALATION_ACTIONS, EVENTS_STREAM, INDEXER_DURABLE, INGEST_DURABLE, INGEST_STREAM,
    REPORTS_DAILY, UNKNOWN_KIND, escalator_durable,
};

/// The event kinds, each sent by one class of producer.
pub const KINDS: [&str; 3] = ["incident", "camera_alert", "fraud_flag"];

/// The subject the standalone demo publishes its simulated stream on.
pub const DEMO_INGEST: &str = "posbon.ingest.demo";

/// Who connects to NATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsRole {
    /// Creates, updates, purges and deletes streams; nothing else.
    Admin,
    /// `posbon standalone` on NATS: every service in one process.
    Standalone,
    /// `posbon-ingest`.
    Ingest,
    /// `posbon-indexer`.
    Indexer,
    /// `posbon-escalator` (every shard).
    Escalator,
    /// `posbon-reporter`.
    Reporter,
    /// `posbon-api`.
    Api,
    /// Police systems: incidents.
    ProducerPolice,
    /// Video analytics: camera alerts.
    ProducerCamera,
    /// Payment anti-fraud: fraud flags.
    ProducerFraud,
    /// A command centre's system acting on escalations over NATS.
    CommandCentre,
}

/// What a user may do: subjects it may publish to (allow, then deny, which
/// wins) and subscribe to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may not publish to even when `publish` allows them.
    pub publish_deny: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
}

fn js(api: &str) -> String {
    format!("$JS.API.{api}")
}

/// The four grants of one durable pull consumer: create it, read its state,
/// pull from it, ack what it delivers.
fn durable(stream: &str, name: &str) -> [String; 4] {
    [
        js(&format!("CONSUMER.CREATE.{stream}.{name}")),
        js(&format!("CONSUMER.INFO.{stream}.{name}")),
        js(&format!("CONSUMER.MSG.NEXT.{stream}.{name}")),
        format!("$JS.ACK.{stream}.{name}.>"),
    ]
}

/// Reading every stream's state (start-up checks and `/readyz`).
fn stream_info() -> Vec<String> {
    let mut out = vec![js("INFO")];
    for stream in [
        INGEST_STREAM,
        EVENTS_STREAM,
        ALERTS_STREAM,
        DLQ_STREAM,
        ACTIONS_STREAM,
    ] {
        out.push(js(&format!("STREAM.INFO.{stream}")));
    }
    out
}

impl NatsRole {
    /// Every role, in the order the configuration lists them.
    pub const ALL: [NatsRole; 11] = [
        NatsRole::Admin,
        NatsRole::Standalone,
        NatsRole::Ingest,
        NatsRole::Indexer,
        NatsRole::Escalator,
        NatsRole::Reporter,
        NatsRole::Api,
        NatsRole::ProducerPolice,
        NatsRole::ProducerCamera,
        NatsRole::ProducerFraud,
        NatsRole::CommandCentre,
    ];

    /// The user's name (also its credentials file's name).
    pub fn user(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Standalone => "standalone",
            Self::Ingest => "ingest",
            Self::Indexer => "indexer",
            Self::Escalator => "escalator",
            Self::Reporter => "reporter",
            Self::Api => "api",
            Self::ProducerPolice => "producer-police",
            Self::ProducerCamera => "producer-camera",
            Self::ProducerFraud => "producer-fraud",
            Self::CommandCentre => "command-centre",
        }
    }

    /// The prefix the user's replies arrive on (`nats.inbox_prefix`).
    pub fn inbox_prefix(self) -> String {
        format!("_INBOX.{}", self.user())
    }

    /// The kind a producer sends, if this is a producer.
    pub fn producer_kind(self) -> Option<&'static str> {
        match self {
            Self::ProducerPolice => Some(KINDS[0]),
            Self::ProducerCamera => Some(KINDS[1]),
            Self::ProducerFraud => Some(KINDS[2]),
            _ => None,
        }
    }

    /// What the user may do, with `escalator_shards` escalator shards (each
    /// has its own durable consumer).
    pub fn permissions(self, escalator_shards: u32) -> Permissions {
        let inbox = format!("{}.>", self.inbox_prefix());
        let mut p = Permissions {
            subscribe: vec![inbox],
            ..Permissions::default()
        };
        let dlq = |kind: &str| format!("posbon.dlq.{kind}");
        match self {
            Self::Admin => {
                p.publish = vec![js(">")];
            }
            Self::Ingest => {
                p.publish.push("posbon.events.*.*.*.*".to_owned());
                p.publish.extend(KINDS.iter().map(|k| dlq(k)));
                p.publish.push(dlq(UNKNOWN_KIND));
                p.publish.extend(stream_info());
                p.publish.extend(durable(INGEST_STREAM, INGEST_DURABLE));
            }
            Self::Indexer => {
                p.publish.push(dlq(UNKNOWN_KIND));
                p.publish.extend(stream_info());
                p.publish.extend(durable(EVENTS_STREAM, INDEXER_DURABLE));
            }
            Self::Escalator => {
                p.publish.push("posbon.alerts.*.*.*".to_owned());
                p.publish.extend(stream_info());
                for index in 0..escalator_shards.max(1) {
                    let name = escalator_durable(index, escalator_shards.max(1));
                    p.publish.extend(durable(EVENTS_STREAM, &name));
                    // A shard's holder restarts its consumer at the checkpoint.
                    p.publish
                        .push(js(&format!("CONSUMER.DELETE.{EVENTS_STREAM}.{name}")));
                }
            }
            Self::Reporter => {
                p.publish.push(REPORTS_DAILY.to_owned());
                p.publish.extend(stream_info());
            }
            Self::Api => {
                p.publish.push("posbon.alerts.*.*.*".to_owned());
                p.publish.push(dlq("action"));
                p.publish.push(dlq("notify"));
                p.publish.extend(stream_info());
                p.publish.extend(durable(ALERTS_STREAM, API_ALERTS_DURABLE));
                p.publish.extend(durable(ALERTS_STREAM, API_NOTIFY_DURABLE));
                p.publish
                    .extend(durable(ACTIONS_STREAM, API_ACTIONS_DURABLE));
                // The live feed reads ALERTS through ordered consumers the
                // server names, and replaces them after a gap.
                for api in [
                    format!("CONSUMER.CREATE.{ALERTS_STREAM}"),
                    format!("CONSUMER.CREATE.{ALERTS_STREAM}.>"),
                    format!("CONSUMER.MSG.NEXT.{ALERTS_STREAM}.*"),
                    format!("CONSUMER.INFO.{ALERTS_STREAM}.*"),
                    format!("CONSUMER.DELETE.{ALERTS_STREAM}.*"),
                ] {
                    p.publish.push(js(&api));
                }
                p.publish_deny.push(js(&format!(
                    "CONSUMER.DELETE.{ALERTS_STREAM}.{API_ALERTS_DURABLE}"
                )));
            }
            Self::Standalone => {
                let mut all = Permissions::default();
                for role in [
                    Self::Ingest,
                    Self::Indexer,
                    Self::Escalator,
                    Self::Reporter,
                    Self::Api,
                ] {
                    let q = role.permissions(escalator_shards);
                    all.publish.extend(q.publish);
                    all.publish_deny.extend(q.publish_deny);
                }
                all.publish.push(DEMO_INGEST.to_owned());
                let mut seen = std::collections::HashSet::new();
                all.publish.retain(|s| seen.insert(s.clone()));
                p.publish = all.publish;
                p.publish_deny = all.publish_deny;
            }
            Self::ProducerPolice | Self::ProducerCamera | Self::ProducerFraud => {
                let kind = self.producer_kind().unwrap_or(UNKNOWN_KIND);
                p.publish.push(format!("posbon.ingest.{kind}"));
            }
            Self::CommandCentre => {
                p.publish.push(ESCALATION_ACTIONS.to_owned());
            }
        }
        p
    }
}

/// A user of the generated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsUser {
    /// Its role.
    pub role: NatsRole,
    /// Its nkey public key (`U...`).
    pub public_key: String,
}

/// A new nkey user for `role`: its public key and seed (`SU...`, the secret
/// its credentials file holds).
pub fn new_user(role: NatsRole) -> (NatsUser, String) {
    let pair = nkeys::KeyPair::new_user();
    let seed = pair
        .seed()
        .expect("a freshly generated user key pair has a seed");
    (
        NatsUser {
            role,
            public_key: pair.public_key(),
        },
        seed,
    )
}

/// TLS of the generated server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// PEM certificate of the server.
    pub cert_file: String,
    /// PEM key of the server.
    pub key_file: String,
    /// PEM CA that signed the clients' certificates; with it, clients must
    /// present one (mutual TLS).
    pub ca_file: Option<String>,
}

/// How the generated server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// `host:port` clients connect to.
    pub listen: String,
    /// JetStream's directory.
    pub store_dir: String,
    /// Escalator shards (one durable consumer each).
    pub escalator_shards: u32,
    /// TLS, when given.
    pub tls: Option<ServerTls>,
    /// Flush JetStream writes to disk before each acknowledgement
    /// (`sync_interval: always`): a stored message survives a power loss,
    /// at the cost of one fsync per write. Off, nats-server syncs every
    /// two minutes and a replicated stream relies on its other replicas.
    pub sync_always: bool,
}

fn quoted(subjects: &[String]) -> String {
    subjects
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The nats-server configuration granting each of `users` its role's
/// permissions, and nothing to anyone else (no anonymous access; the
/// monitoring port is not opened).
pub fn server_config(options: &ServerOptions, users: &[NatsUser]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `posbon nats-config`: one nkey user per Posbon service and producer class,\n\
         # each with only the subjects it needs. Run it as it is: nats-server -c nats.conf\n"
    );
    let (host, port) = options
        .listen
        .rsplit_once(':')
        .unwrap_or((options.listen.as_str(), "4222"));
    let _ = writeln!(out, "host: \"{host}\"\nport: {port}");
    // Events are at most 64 KiB; NDJSON batches on posbon.ingest.<kind> may
    // be larger.
    let _ = writeln!(out, "max_payload: 8MB");
    let _ = writeln!(
        out,
        "jetstream {{\n  store_dir: \"{}\"{}\n}}",
        options.store_dir,
        if options.sync_always {
            "\n  sync_interval: always"
        } else {
            ""
        }
    );
    if let Some(tls) = &options.tls {
        let _ = writeln!(out, "tls {{");
        let _ = writeln!(out, "  cert_file: \"{}\"", tls.cert_file);
        let _ = writeln!(out, "  key_file: \"{}\"", tls.key_file);
        if let Some(ca) = &tls.ca_file {
            let _ = writeln!(out, "  ca_file: \"{ca}\"\n  verify: true");
        }
        let _ = writeln!(out, "  timeout: 5\n}}");
    }
    let _ = writeln!(out, "authorization {{\n  users = [");
    for user in users {
        let p = user.role.permissions(options.escalator_shards);
        let _ = writeln!(out, "    # {}", user.role.user());
        let _ = writeln!(out, "    {{");
        let _ = writeln!(out, "      nkey: \"{}\"", user.public_key);
        let _ = writeln!(out, "      permissions: {{");
        let _ = write!(out, "        publish: {{ allow: [{}]", quoted(&p.publish));
        if !p.publish_deny.is_empty() {
            let _ = write!(out, ", deny: [{}]", quoted(&p.publish_deny));
        }
        let _ = writeln!(out, " }}");
        let _ = writeln!(
            out,
            "        subscribe: {{ allow: [{}] }}",
            quoted(&p.subscribe)
        );
        let _ = writeln!(out, "      }}\n    }}");
    }
    let _ = writeln!(out, "  ]\n}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subjects::subject_matches;

    fn may_publish(role: NatsRole, subject: &str) -> bool {
        let p = role.permissions(2);
        p.publish.iter().any(|a| subject_matches(a, subject))
            && !p.publish_deny.iter().any(|d| subject_matches(d, subject))
    }

    #[test]
    fn each_user_may_do_its_work_and_no_more() {
        use NatsRole::*;
        let event = "posbon.events.tashkent.chilonzor.chilonzor-001.incident";
        let alert = "posbon.alerts.tashkent.chilonzor.chilonzor-001";
        for role in NatsRole::ALL {
            assert_eq!(
                may_publish(role, event),
                matches!(role, Ingest | Standalone),
                "{role:?}"
            );
            assert_eq!(
                may_publish(role, alert),
                matches!(role, Escalator | Api | Standalone),
                "{role:?}"
            );
            assert_eq!(
                may_publish(role, "$JS.API.STREAM.DELETE.EVENTS"),
                role == Admin,
                "{role:?}"
            );
            assert_eq!(
                may_publish(role, "$JS.API.STREAM.CREATE.EVENTS"),
                role == Admin,
                "{role:?}"
            );
            // Nobody but the indexer (the process that is every service,
            // and the admin who owns the streams) reads the indexer's
            // deliveries, and only they ack them.
            assert_eq!(
                may_publish(role, "$JS.API.CONSUMER.MSG.NEXT.EVENTS.indexer"),
                matches!(role, Indexer | Standalone | Admin),
                "{role:?}"
            );
            assert_eq!(
                may_publish(role, "$JS.ACK.EVENTS.indexer.1.2.3.4.5.6.7"),
                matches!(role, Indexer | Standalone),
                "{role:?}"
            );
            let p = role.permissions(2);
            assert_eq!(p.subscribe, vec![format!("_INBOX.{}.>", role.user())]);
        }
        assert!(may_publish(ProducerPolice, "posbon.ingest.incident"));
        assert!(!may_publish(ProducerPolice, "posbon.ingest.fraud_flag"));
        assert!(may_publish(ProducerFraud, "posbon.ingest.fraud_flag"));
        assert!(may_publish(
            Escalator,
            "$JS.API.CONSUMER.CREATE.EVENTS.escalator-1-of-2"
        ));
        assert!(!may_publish(
            Escalator,
            "$JS.API.CONSUMER.CREATE.EVENTS.indexer"
        ));
        assert!(may_publish(Api, "$JS.API.CONSUMER.DELETE.ALERTS.feed_x_1"));
        assert!(!may_publish(
            Api,
            "$JS.API.CONSUMER.DELETE.ALERTS.api-lifecycle"
        ));
        assert!(may_publish(CommandCentre, "posbon.actions.escalations"));
        assert!(!may_publish(Reporter, "posbon.actions.escalations"));
    }

    #[test]
    fn the_configuration_lists_every_user_quoted() {
        let users: Vec<NatsUser> = NatsRole::ALL.iter().map(|r| new_user(*r).0).collect();
        let conf = server_config(
            &ServerOptions {
                listen: "0.0.0.0:4222".into(),
                store_dir: "/var/lib/nats".into(),
                escalator_shards: 1,
                tls: None,
                sync_always: true,
            },
            &users,
        );
        assert!(conf.contains("sync_interval: always"), "{conf}");
        for user in &users {
            assert!(conf.contains(&user.public_key));
            assert!(user.public_key.starts_with('U'));
        }
        assert!(conf.contains("\"$JS.API.CONSUMER.CREATE.INGEST.ingest\""));
        assert!(!conf.contains(" $JS"), "every $ subject is quoted");
        assert!(!conf.contains("8222"), "no monitoring port");
    }
}
