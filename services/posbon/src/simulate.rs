//! `posbon simulate`: thin wrappers around `posbon-sim`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use posbon_sim::{
    CityOptions, EventOptions, EventStream, GeneratedRegistry, NationalOptions, SimRegistry,
};

use crate::cli::{EventsArgs, SimulateArgs, SimulateCommand};

/// Runs `posbon simulate <what>`.
pub(crate) fn run(args: SimulateArgs, quiet: bool) -> anyhow::Result<()> {
    let log = |msg: String| {
        if !quiet {
            eprintln!("posbon: {msg}");
        }
    };
    match args.what {
        SimulateCommand::City(a) => {
            let t = Instant::now();
            let reg = posbon_sim::city_registry(&CityOptions {
                seed: a.seed,
                mahallas: a.mahallas,
            })?;
            write_registry(&reg, a.out.as_deref())?;
            log(summary(&reg, "city", t, a.out.as_deref()));
        }
        SimulateCommand::National(a) => {
            let t = Instant::now();
            let reg = posbon_sim::national_registry(&NationalOptions {
                seed: a.seed,
                mahallas: a.mahallas,
            })?;
            write_registry(&reg, a.out.as_deref())?;
            log(summary(&reg, "national", t, a.out.as_deref()));
        }
        SimulateCommand::Events(a) => events(a, &log)?,
        SimulateCommand::Evaluate(a) => evaluate(a)?,
    }
    Ok(())
}

fn summary(reg: &GeneratedRegistry, what: &str, t: Instant, out: Option<&Path>) -> String {
    format!(
        "{what} registry: {} mahallas in {} districts, {} regions, population {}, in {:.2} s -> {}",
        reg.len(),
        reg.districts().len(),
        reg.regions().len(),
        reg.population(),
        t.elapsed().as_secs_f64(),
        out.map_or_else(|| "stdout".to_owned(), |p| p.display().to_string()),
    )
}

fn create(path: &Path) -> anyhow::Result<File> {
    File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

fn write_registry(reg: &GeneratedRegistry, out: Option<&Path>) -> anyhow::Result<()> {
    match out {
        Some(path) => reg.write_geojson(create(path)?)?,
        None => reg.write_geojson(std::io::stdout().lock())?,
    }
    Ok(())
}

fn events(a: EventsArgs, log: &dyn Fn(String)) -> anyhow::Result<()> {
    let duration = posbon_sim::parse_duration(&a.duration)?;
    let start = DateTime::parse_from_rfc3339(&a.start).with_context(|| {
        format!(
            "invalid --start {:?}, expected RFC 3339 such as 2026-11-01T00:00:00+05:00",
            a.start
        )
    })?;
    let options = EventOptions {
        seed: a.seed,
        rate_per_hour: a.rate,
        duration,
        start,
        bad_fraction: a.bad_fraction,
        situations: posbon_sim::Situations {
            difficult: a.difficult,
            difficult_days: a.difficult_days,
            quiet: a.quiet_mahallas,
            repeat_districts: a.repeat_districts,
        },
    };
    let end = options.end();
    if !a.allow_future && end.with_timezone(&Utc) > Utc::now() {
        bail!(
            "the stream would end at {}, after the current time (the validator rejects future events); pick an earlier --start or a shorter --duration, or pass --allow-future",
            end.to_rfc3339()
        );
    }
    let t = Instant::now();
    let registry = match &a.registry {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            SimRegistry::from_geojson(&bytes)
                .with_context(|| format!("cannot use {}", path.display()))?
        }
        None => SimRegistry::from_generated(&posbon_sim::city_registry(&CityOptions::default())?)?,
    };
    let loaded = t.elapsed();
    let mut stream = EventStream::new(Arc::new(registry), &options)?;
    let t = Instant::now();
    let written = match &a.out {
        Some(path) => posbon_sim::write_ndjson(&mut stream, create(path)?)?,
        None => posbon_sim::write_ndjson(&mut stream, std::io::stdout().lock())?,
    };
    let elapsed = t.elapsed();
    let truth_path: Option<PathBuf> = a.truth.clone().or_else(|| {
        a.out.as_ref().map(|out| {
            let mut name = out.as_os_str().to_owned();
            name.push(".truth.json");
            PathBuf::from(name)
        })
    });
    if let Some(path) = &truth_path {
        let mut file = create(path)?;
        stream.truth().write_json(&mut file)?;
        file.flush()?;
    }
    let truth = stream.truth();
    log(format!(
        "{} lines ({} valid, {} bad) over {} mahallas, {} injected patterns, from {} to {}; registry in {:.2} s, events in {:.2} s -> {}{}",
        written.lines,
        written.valid,
        written.bad,
        stream.registry().len(),
        truth.injections.len(),
        options.start.to_rfc3339(),
        end.to_rfc3339(),
        loaded.as_secs_f64(),
        elapsed.as_secs_f64(),
        a.out
            .as_ref()
            .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string()),
        truth_path.map_or_else(String::new, |p| format!(", truth -> {}", p.display())),
    ));
    Ok(())
}

/// `posbon simulate evaluate`: prints the risk model's report on a simulated
/// stream.
fn evaluate(a: crate::cli::EvaluateArgs) -> anyhow::Result<()> {
    let registry_geojson = match &a.registry {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => None,
    };
    let options = posbon_risk::sim::SimEvalOptions {
        seed: a.seed,
        rate_per_hour: a.rate,
        warmup_days: a.warmup_days,
        scored_days: a.days,
        registry_geojson,
        ..posbon_risk::sim::SimEvalOptions::default()
    };
    let report = posbon_risk::sim::evaluate_report(&options)?;
    println!("{report}");
    Ok(())
}
