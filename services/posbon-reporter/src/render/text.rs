//! The text report for a terminal (`posbon report daily`).

use std::fmt::Write as _;

use super::*;

/// A text report for a terminal (`posbon report daily`).
pub fn to_text(view: &ScopeView) -> String {
    let s = &view.summary;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Daily situation report {} ({}): {}",
        view.date,
        view.time_zone,
        title(Lang::En, view)
    );
    let _ = writeln!(
        t,
        "  events {}  (incidents {}, camera alerts {}, fraud flags {})",
        s.events, s.incidents, s.camera_alerts, s.fraud_flags
    );
    let _ = writeln!(
        t,
        "  offences {}  cybercrime {} ({})  harm {}",
        s.offences,
        s.cyber,
        share(Lang::En, s.cyber_share),
        s.harm
    );
    let _ = writeln!(
        t,
        "  against 7 days: expected {}, z {}",
        baseline(Lang::En, s.baseline7, s.baseline7_days, 7),
        z(Lang::En, s.z7)
    );
    let _ = writeln!(
        t,
        "  against 28 days: expected {}, z {}",
        baseline(Lang::En, s.baseline28, s.baseline28_days, 28),
        z(Lang::En, s.z28)
    );
    let _ = writeln!(
        t,
        "  escalations opened {}, closed {}   crime-free mahallas {} of {}",
        s.escalations_opened, s.escalations_closed, s.crime_free_mahallas, s.mahallas
    );
    if !view.parts.is_empty() {
        let mut parts: Vec<&ScopeRow> = view.parts.iter().collect();
        // Highest z against 7 days first (there sooner than the 28-day
        // one); areas without it last.
        let key = |r: &ScopeRow| r.z7.unwrap_or(f64::NEG_INFINITY);
        parts.sort_by(|a, b| {
            key(b)
                .total_cmp(&key(a))
                .then_with(|| a.scope_id.cmp(&b.scope_id))
        });
        let _ = writeln!(t, "\nBy area, highest z against 7 days first:");
        let _ = writeln!(
            t,
            "  {:<28} {:>9} {:>7} {:>7} {:>7} {:>7}",
            "area", "offences", "cyber", "harm", "z7", "z28"
        );
        for p in parts.iter().take(20) {
            let _ = writeln!(
                t,
                "  {:<28} {:>9} {:>7} {:>7} {:>7} {:>7}",
                truncate(&p.name, 28),
                p.offences,
                share(Lang::En, p.cyber_share),
                p.harm,
                z_cell(Lang::En, p.z7),
                z_cell(Lang::En, p.z28)
            );
        }
        if parts.len() > 20 {
            let _ = writeln!(t, "  ... and {} more", parts.len() - 20);
        }
    }
    let own: Vec<&FocusGroupRow> = FOCUS_GROUPS
        .iter()
        .filter_map(|g| focus(view, s, g))
        .collect();
    if !own.is_empty() {
        let _ = writeln!(t, "\nFocus groups:");
        for f in own {
            let _ = writeln!(
                t,
                "  {:<32} {:>8}  z7 {:>7}  z28 {:>7}",
                focus_label(Lang::En, &f.focus_group),
                focus_count_in(Lang::En, f),
                z_cell(Lang::En, f.z7),
                z_cell(Lang::En, f.z28)
            );
        }
    }
    if s.scope == ScopeKind::Mahalla {
        if let Some(days) = s.crime_free_days {
            let _ = writeln!(t, "\nCrime-free streak: {}", streak_text(Lang::En, s, days));
        }
    } else if let Some(streaks) = &view.streaks {
        let _ = writeln!(t, "\nCrime-free streaks (mahallas):");
        for st in &streaks.thresholds {
            let _ = writeln!(
                t,
                "  >= {:>3} days: {:>6}   joined {}, left {}",
                st.days,
                st.count,
                st.joined.len(),
                st.left.len()
            );
        }
    }
    if s.difficult_mahallas.is_some() || !view.difficult.mahallas.is_empty() {
        let d = &view.difficult;
        let _ = writeln!(
            t,
            "\nDifficult mahallas: {} (newly {}, recovered {})",
            d.mahallas.len(),
            d.newly().count(),
            d.recovered.len()
        );
        for r in d.mahallas.iter().take(20) {
            let _ = writeln!(
                t,
                "  {:<28} {:<10} since {}  {}  {}  inspector {}",
                truncate(&r.name, 28),
                if r.newly { "newly" } else { "" },
                r.difficult_since.map(|d| d.to_string()).unwrap_or_default(),
                difficult_text(Lang::En, r),
                r.trend,
                r.inspector.as_deref().unwrap_or("–")
            );
        }
        if d.mahallas.len() > 20 {
            let _ = writeln!(t, "  ... and {} more", d.mahallas.len() - 20);
        }
    }
    if let Some(place) = s.place_offences {
        let _ = writeln!(
            t,
            "\nRecurrence, last 14 days: {place} place-based offences, {} repeat cells ({} offences); \
             near repeats {} ({}), ratio to shuffled times {}",
            opt_num(s.repeat_cells),
            opt_num(s.repeat_offences),
            s.near_repeat_offences
                .map_or_else(|| "–".to_owned(), |n| n.to_string()),
            share(Lang::En, s.near_repeat_share),
            near_repeat_text(Lang::En, s)
        );
        for c in &view.repeat_cells {
            let _ = writeln!(
                t,
                "  {:>2}. {}  {:<18} {:>3} offences  {}",
                c.rank, c.cell, c.category, c.offences, c.mahalla_id
            );
        }
    }
    if !view.categories.is_empty() {
        let mut cats = view.categories.clone();
        cats.sort_by(|a, b| {
            b.events
                .cmp(&a.events)
                .then_with(|| a.category.cmp(&b.category))
        });
        let _ = writeln!(t, "\nBy kind and category:");
        for c in cats.iter().take(15) {
            let _ = writeln!(
                t,
                "  {:<13} {:<20} {:>7} events {:>7} harm",
                c.kind, c.category, c.events, c.harm
            );
        }
    }
    if !view.hot_cells.is_empty() {
        let _ = writeln!(t, "\nHottest cells:");
        for c in &view.hot_cells {
            let _ = writeln!(
                t,
                "  {:>2}. {}  {:>5} events {:>6} harm",
                c.rank, c.cell, c.events, c.harm
            );
        }
    }
    let _ = writeln!(t, "\nCrime-free mahallas: {}", view.crime_free.count);
    t
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}
