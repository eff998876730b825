//! Renderings of a [`ScopeView`]: CSV, a printable HTML page and a text
//! report for the terminal (JSON is its serde form).

use std::fmt::Write as _;

use crate::report::{
    FOCUS_GROUPS, FocusGroupRow, ScopeKind, ScopeRow, ScopeView, focus_group_label,
};
use crate::situation::DifficultRow;

/// The columns of the CSV rendering, in order: [`ROW_COLUMNS`],
/// [`DIFFICULT_COLUMNS`] (filled for a mahalla the difficult rule lists),
/// then each focus group's offences and z against 7 days (`victim_minor`,
/// `victim_minor_z7`, ...; a withheld count reads `<3`, or `withheld`).
pub fn csv_columns() -> Vec<String> {
    let mut columns: Vec<String> = ROW_COLUMNS
        .iter()
        .chain(&DIFFICULT_COLUMNS)
        .map(|c| (*c).to_owned())
        .collect();
    for g in FOCUS_GROUPS {
        columns.push(g.to_owned());
        columns.push(format!("{g}_z7"));
    }
    columns
}

/// The columns of a scope's row in the CSV rendering, in order.
pub const ROW_COLUMNS: [&str; 46] = [
    "date",
    "scope",
    "scope_id",
    "name",
    "region_id",
    "district_id",
    "mahallas",
    "crime_free_mahallas",
    "events",
    "incidents",
    "camera_alerts",
    "fraud_flags",
    "offences",
    "cyber",
    "cyber_share",
    "harm",
    "baseline7",
    "baseline7_days",
    "z7",
    "baseline28",
    "baseline28_days",
    "z28",
    "dispersion",
    "camera_alerts_baseline7",
    "camera_alerts_z7",
    "escalations_opened",
    "escalations_closed",
    "crime_free_days",
    "crime_free_days_before",
    "last_offence",
    "records_since",
    "crime_free_30d",
    "crime_free_90d",
    "crime_free_180d",
    "difficult_mahallas",
    "newly_difficult",
    "recovered_mahallas",
    "place_offences",
    "repeat_cells",
    "repeat_offences",
    "near_repeat_offences",
    "near_repeat_share",
    "near_repeat_pairs",
    "near_repeat_expected",
    "near_repeat_ratio",
    "near_repeat_excess",
];

/// The columns of a mahalla the difficult rule lists (empty otherwise):
/// `difficult` or `recovered`, since when, its difficult days of the 14,
/// its trend and the inspector who answers for it.
pub const DIFFICULT_COLUMNS: [&str; 5] = [
    "difficult_status",
    "difficult_since",
    "difficult_days",
    "difficult_trend",
    "inspector",
];

fn csv_field(out: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

fn row_fields(view: &ScopeView, r: &ScopeRow) -> Vec<String> {
    let f = |v: f64| format!("{v:.4}");
    vec![
        view.date.to_string(),
        r.scope.to_string(),
        r.scope_id.clone(),
        r.name.clone(),
        r.region_id.clone().unwrap_or_default(),
        r.district_id.clone().unwrap_or_default(),
        r.mahallas.to_string(),
        r.crime_free_mahallas.to_string(),
        r.events.to_string(),
        r.incidents.to_string(),
        r.camera_alerts.to_string(),
        r.fraud_flags.to_string(),
        r.offences.to_string(),
        r.cyber.to_string(),
        r.cyber_share.map(f).unwrap_or_default(),
        r.harm.to_string(),
        r.baseline7.map(f).unwrap_or_default(),
        r.baseline7_days.map(|d| d.to_string()).unwrap_or_default(),
        r.z7.map(f).unwrap_or_default(),
        r.baseline28.map(f).unwrap_or_default(),
        r.baseline28_days.map(|d| d.to_string()).unwrap_or_default(),
        r.z28.map(f).unwrap_or_default(),
        r.dispersion.map(f).unwrap_or_default(),
        r.camera_alerts_baseline7.map(f).unwrap_or_default(),
        r.camera_alerts_z7.map(f).unwrap_or_default(),
        r.escalations_opened.to_string(),
        r.escalations_closed.to_string(),
        opt_num(r.crime_free_days),
        opt_num(r.crime_free_days_before),
        r.last_offence.map(|d| d.to_string()).unwrap_or_default(),
        r.records_since.map(|d| d.to_string()).unwrap_or_default(),
        opt_num(r.crime_free_30d),
        opt_num(r.crime_free_90d),
        opt_num(r.crime_free_180d),
        opt_num(r.difficult_mahallas),
        opt_num(r.newly_difficult),
        opt_num(r.recovered_mahallas),
        opt_num(r.place_offences),
        opt_num(r.repeat_cells),
        opt_num(r.repeat_offences),
        opt_num(r.near_repeat_offences),
        r.near_repeat_share.map(f).unwrap_or_default(),
        opt_num(r.near_repeat_pairs),
        r.near_repeat_expected.map(f).unwrap_or_default(),
        r.near_repeat_ratio.map(f).unwrap_or_default(),
        r.near_repeat_excess.map(f).unwrap_or_default(),
    ]
}

/// The difficult-rule row of a mahalla in the view, if it is listed.
fn difficult_of<'a>(view: &'a ScopeView, r: &ScopeRow) -> Option<&'a DifficultRow> {
    if r.scope != ScopeKind::Mahalla {
        return None;
    }
    view.difficult
        .mahallas
        .iter()
        .chain(&view.difficult.recovered)
        .find(|d| d.mahalla_id == r.scope_id)
}

fn difficult_fields(d: Option<&DifficultRow>) -> [String; 5] {
    match d {
        Some(d) => [
            d.status.clone(),
            d.difficult_since.map(|d| d.to_string()).unwrap_or_default(),
            d.difficult_days.to_string(),
            d.trend.clone(),
            d.inspector.clone().unwrap_or_default(),
        ],
        None => Default::default(),
    }
}

/// A mahalla's days since its last offence: "12", "≥ 40" without one in
/// the records, "–" for larger areas.
fn days_since_offence(r: &ScopeRow) -> String {
    match (r.crime_free_days, r.last_offence) {
        (Some(d), Some(_)) => d.to_string(),
        (Some(d), None) => format!("≥ {d}"),
        (None, _) => "–".to_owned(),
    }
}

fn opt_num(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The focus-group row of a scope in the view.
fn focus<'a>(view: &'a ScopeView, r: &ScopeRow, group: &str) -> Option<&'a FocusGroupRow> {
    view.focus_groups
        .iter()
        .find(|f| f.scope == r.scope && f.scope_id == r.scope_id && f.focus_group == group)
}

/// A focus-group count as shown: the number, `<3`, or `withheld`.
fn focus_count(f: &FocusGroupRow) -> String {
    match (f.offences, f.fewer_than) {
        (Some(n), _) => n.to_string(),
        (None, Some(min)) => format!("<{min}"),
        (None, None) => "withheld".to_owned(),
    }
}

/// The scope's row and its parts' rows as CSV with a header line.
pub fn to_csv(view: &ScopeView) -> String {
    let mut out = String::new();
    out.push_str(&csv_columns().join(","));
    out.push_str("\r\n");
    for r in std::iter::once(&view.summary).chain(&view.parts) {
        let mut fields = row_fields(view, r);
        fields.extend(difficult_fields(difficult_of(view, r)));
        for g in FOCUS_GROUPS {
            match focus(view, r, g) {
                Some(f) => {
                    fields.push(focus_count(f));
                    fields.push(f.z7.map(|v| format!("{v:.4}")).unwrap_or_default());
                }
                None => fields.extend([String::new(), String::new()]),
            }
        }
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, field);
        }
        out.push_str("\r\n");
    }
    out
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a withheld z score reads as.
pub const NOT_ENOUGH_HISTORY: &str = "not enough history";

/// A z score, or [`NOT_ENOUGH_HISTORY`].
fn z(v: Option<f64>) -> String {
    v.map_or_else(|| NOT_ENOUGH_HISTORY.to_owned(), |v| format!("{v:+.2}"))
}

/// A z score in a table column: `–` when withheld.
fn z_cell(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:+.2}"))
}

/// A baseline with its coverage: "412.30 (6 of 7 days)".
fn baseline(v: Option<f64>, days: Option<i64>, of: i64) -> String {
    let value = v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"));
    match days {
        Some(d) => format!("{value} ({d} of {of} days with data)"),
        None => value,
    }
}

fn share(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn title(view: &ScopeView) -> String {
    match view.summary.scope {
        ScopeKind::Nation => "All mahallas".to_owned(),
        ScopeKind::Unassigned => "Events outside every mahalla".to_owned(),
        kind => format!(
            "{} {} ({})",
            capital(kind.as_str()),
            view.summary.name,
            view.summary.scope_id
        ),
    }
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A printable HTML page of the view.
pub fn to_html(view: &ScopeView) -> String {
    let s = &view.summary;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Daily situation report {date}: {title}</title>\
         <style>body{{font-family:sans-serif;margin:2em;color:#111}}\
         table{{border-collapse:collapse;margin:1em 0}}th,td{{border:1px solid #999;padding:2px 8px;text-align:right}}\
         th{{background:#eee}}td.l,th.l{{text-align:left}}h1{{font-size:1.4em}}h2{{font-size:1.1em;margin-top:1.5em}}\
         @media print{{body{{margin:0}}h2{{page-break-after:avoid}}table{{page-break-inside:auto}}}}</style>\
         </head><body>\n<h1>Daily situation report: {title}</h1>\n\
         <p>{date} ({tz}). Offences are incidents and fraud flags. The baselines are the offences \
         expected on the day from the days before that had data (weekday-adjusted once every \
         weekday has three days of data); z measures the change against them, allowing for how much the area's daily \
         counts vary (|z| above 3 is unusual). Without enough days with data the z is withheld.</p>\n",
        date = view.date,
        tz = esc(&view.time_zone),
        title = esc(&title(view)),
    );
    h.push_str("<h2>Summary</h2>\n<table>\n");
    let rows: [(&str, String); 16] = [
        ("Events", s.events.to_string()),
        ("Incidents", s.incidents.to_string()),
        ("Camera alerts", s.camera_alerts.to_string()),
        ("Fraud flags", s.fraud_flags.to_string()),
        ("Offences", s.offences.to_string()),
        ("Cybercrime share", share(s.cyber_share)),
        ("Harm points", s.harm.to_string()),
        (
            "Baseline, 7 days",
            baseline(s.baseline7, s.baseline7_days, 7),
        ),
        ("z against 7 days", z(s.z7)),
        (
            "Baseline, 28 days",
            baseline(s.baseline28, s.baseline28_days, 28),
        ),
        ("z against 28 days", z(s.z28)),
        (
            "Camera alerts, baseline 7 days",
            baseline(s.camera_alerts_baseline7, s.baseline7_days, 7),
        ),
        ("Camera alerts, z against 7 days", z(s.camera_alerts_z7)),
        ("Escalations opened", s.escalations_opened.to_string()),
        ("Escalations closed", s.escalations_closed.to_string()),
        (
            "Crime-free mahallas",
            format!("{} of {}", s.crime_free_mahallas, s.mahallas),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(
            h,
            "<tr><th class=\"l\">{name}</th><td>{}</td></tr>",
            esc(&value)
        );
    }
    h.push_str("</table>\n");
    if !view.parts.is_empty() {
        h.push_str(
            "<h2>By area</h2>\n<table>\n<tr><th class=\"l\">Area</th><th class=\"l\">Id</th>\
            <th>Offences</th><th>Cyber</th><th>Harm</th><th>z7</th><th>z28</th>\
            <th>Esc. opened</th><th>Esc. closed</th><th>Crime-free</th><th>Days since offence</th></tr>\n",
        );
        for p in &view.parts {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
                esc(&p.name),
                esc(&p.scope_id),
                p.offences,
                share(p.cyber_share),
                p.harm,
                z_cell(p.z7),
                z_cell(p.z28),
                p.escalations_opened,
                p.escalations_closed,
                p.crime_free_mahallas,
                p.mahallas,
                days_since_offence(p)
            );
        }
        h.push_str("</table>\n");
    }
    html_focus_groups(&mut h, view);
    html_streaks(&mut h, view);
    html_difficult(&mut h, view);
    html_recurrence(&mut h, view);
    h.push_str(
        "<h2>By kind and category</h2>\n<table>\n<tr><th class=\"l\">Kind</th>\
        <th class=\"l\">Category</th><th>Events</th><th>Harm</th></tr>\n",
    );
    for c in &view.categories {
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.kind),
            esc(&c.category),
            c.events,
            c.harm
        );
    }
    h.push_str(
        "</table>\n<h2>Hottest cells</h2>\n<table>\n<tr><th>Rank</th>\
        <th class=\"l\">H3 cell</th><th>Events</th><th>Harm</th></tr>\n",
    );
    for c in &view.hot_cells {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
            c.rank, c.cell, c.events, c.harm
        );
    }
    let _ = write!(
        h,
        "</table>\n<h2>Crime-free mahallas: {}</h2>\n<p>",
        view.crime_free.count
    );
    let names: Vec<String> = view
        .crime_free
        .mahallas
        .iter()
        .map(|m| format!("{} ({})", esc(&m.name), esc(&m.mahalla_id)))
        .collect();
    h.push_str(&names.join(", "));
    h.push_str("</p>\n</body></html>\n");
    h
}

fn html_focus_groups(h: &mut String, view: &ScopeView) {
    let s = &view.summary;
    let own: Vec<&FocusGroupRow> = FOCUS_GROUPS
        .iter()
        .filter_map(|g| focus(view, s, g))
        .collect();
    if own.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Focus groups</h2>\n<table>\n<tr><th class=\"l\">Group</th><th>Offences</th>\
         <th>Baseline, 7 days</th><th>z against 7 days</th><th>z against 28 days</th></tr>\n",
    );
    for f in own {
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(focus_group_label(&f.focus_group)),
            esc(&focus_count(f)),
            esc(&baseline(f.baseline7, Some(f.baseline7_days), 7)),
            esc(&z(f.z7)),
            esc(&z(f.z28)),
        );
    }
    h.push_str("</table>\n");
    if view.parts.is_empty() {
        return;
    }
    h.push_str("<table>\n<tr><th class=\"l\">Area</th>");
    for g in FOCUS_GROUPS {
        let _ = write!(h, "<th>{}</th>", esc(focus_group_label(g)));
    }
    h.push_str("</tr>\n");
    for p in &view.parts {
        let _ = write!(h, "<tr><td class=\"l\">{}</td>", esc(&p.name));
        for g in FOCUS_GROUPS {
            let cell = focus(view, p, g).map(focus_count).unwrap_or_default();
            let _ = write!(h, "<td>{}</td>", esc(&cell));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

fn html_streaks(h: &mut String, view: &ScopeView) {
    let s = &view.summary;
    if s.scope == ScopeKind::Mahalla {
        if let Some(days) = s.crime_free_days {
            let _ = writeln!(
                h,
                "<h2>Crime-free streak</h2>\n<p>{}</p>",
                esc(&streak_text(s, days))
            );
        }
        return;
    }
    let Some(streaks) = &view.streaks else {
        return;
    };
    let _ = writeln!(
        h,
        "<h2>Crime-free streaks</h2>\n<p>Days since a mahalla's last offence{}.</p>\n\
         <table>\n<tr><th>Crime-free for at least</th><th>Mahallas</th>\
         <th class=\"l\">Joined today</th><th class=\"l\">Left today</th></tr>",
        streaks
            .records_since
            .map(|d| format!(", counted from the records that begin on {d}"))
            .unwrap_or_default()
    );
    let names = |list: &[crate::report::CrimeFreeMahalla]| {
        if list.is_empty() {
            "–".to_owned()
        } else {
            list.iter()
                .map(|m| format!("{} ({})", m.name, m.mahalla_id))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    for t in &streaks.thresholds {
        let _ = writeln!(
            h,
            "<tr><td>{} days</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            t.days,
            t.count,
            esc(&names(&t.joined)),
            esc(&names(&t.left))
        );
    }
    h.push_str("</table>\n");
}

/// "3 of 14 days (2 with an escalation, 1 with a high score)".
fn difficult_text(d: &DifficultRow) -> String {
    format!(
        "{} of 14 days ({} with an escalation, {} with a high score{})",
        d.difficult_days,
        d.escalation_days,
        d.score_days,
        if d.days_scored < 14 {
            format!("; {} of 14 days scored", d.days_scored)
        } else {
            String::new()
        }
    )
}

fn html_difficult(h: &mut String, view: &ScopeView) {
    let d = &view.difficult;
    if view.summary.difficult_mahallas.is_none() && d.mahallas.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<h2>Difficult mahallas: {}</h2>
<p>A mahalla is difficult when, over the last 14 days, \
         escalations or high change scores of its offences kept coming back (the report's rule, \
         set by [reporter.difficult]). Newly difficult today: {}. Recovered since yesterday: {}.</p>",
        d.mahallas.len(),
        d.newly().count(),
        d.recovered.len()
    );
    if d.mahallas.is_empty() && d.recovered.is_empty() {
        return;
    }
    h.push_str(
        "<table>\n<tr><th class=\"l\">Mahalla</th><th class=\"l\">District</th>\
         <th class=\"l\">Status</th><th class=\"l\">Since</th><th class=\"l\">Difficult days</th>\
         <th>Offences, 7 days</th><th>7 days before</th><th class=\"l\">Trend</th>\
         <th>Open escalations</th><th class=\"l\">Inspector</th></tr>\n",
    );
    for r in d.mahallas.iter().chain(&d.recovered) {
        let status = match (r.is_difficult(), r.newly) {
            (true, true) => "newly difficult",
            (true, false) => "difficult",
            _ => "recovered",
        };
        let open = match &r.open_level {
            Some(level) => format!("{} ({level})", r.open_escalations),
            None => r.open_escalations.to_string(),
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{} ({})</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td>\
             <td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            esc(&r.name),
            esc(&r.mahalla_id),
            esc(&r.district_id),
            status,
            r.difficult_since.map(|d| d.to_string()).unwrap_or_default(),
            esc(&difficult_text(r)),
            r.offences_7d,
            r.offences_prev_7d,
            esc(&r.trend),
            esc(&open),
            esc(r.inspector.as_deref().unwrap_or("–")),
        );
    }
    h.push_str("</table>\n");
}

/// "1.23 (412 close pairs, 335 expected; 0.21 beyond chance per offence)".
fn near_repeat_text(r: &ScopeRow) -> String {
    match (
        r.near_repeat_ratio,
        r.near_repeat_pairs,
        r.near_repeat_expected,
        r.near_repeat_excess,
    ) {
        (Some(ratio), Some(pairs), Some(expected), Some(excess)) => format!(
            "{ratio:.2} ({pairs} close pairs, {expected:.0} expected; {excess:.2} beyond chance \
             per offence)"
        ),
        _ => "–".to_owned(),
    }
}

fn html_recurrence(h: &mut String, view: &ScopeView) {
    let s = &view.summary;
    let Some(place) = s.place_offences else {
        return;
    };
    let _ = writeln!(
        h,
        "<h2>Recurrence, last 14 days</h2>\n<p>Place-based offences (incidents other than fraud \
         and cybercrime): {place}. Repeat locations (a cell of about 66 m with two or more \
         offences of one category): {} with {} offences. Near repeats are offences within one \
         ring of cells (about 200 m) and 7 days of an earlier one of the same category in the \
         district; the ratio compares such pairs with what the same offences give with their \
         times shuffled (1: no more than chance), and the excess counts the pairs beyond chance \
         per offence.</p>\n<table>\n\
         <tr><th class=\"l\">Near repeats</th><td>{}</td></tr>\n\
         <tr><th class=\"l\">Share of offences</th><td>{}</td></tr>\n\
         <tr><th class=\"l\">Ratio to a time-shuffled history</th><td>{}</td></tr>\n</table>",
        opt_num(s.repeat_cells),
        opt_num(s.repeat_offences),
        s.near_repeat_offences
            .map_or_else(|| "–".to_owned(), |n| n.to_string()),
        share(s.near_repeat_share),
        esc(&near_repeat_text(s)),
    );
    let districts: Vec<&ScopeRow> = view
        .parts
        .iter()
        .filter(|p| p.near_repeat_ratio.is_some())
        .collect();
    if !districts.is_empty() {
        h.push_str(
            "<table>\n<tr><th class=\"l\">Area</th><th>Place-based offences</th>\
             <th>Repeat cells</th><th>Near repeats</th><th>Share</th><th>Ratio</th>\
             <th>Beyond chance per offence</th></tr>\n",
        );
        for p in districts {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td></tr>",
                esc(&p.name),
                opt_num(p.place_offences),
                opt_num(p.repeat_cells),
                opt_num(p.near_repeat_offences),
                share(p.near_repeat_share),
                p.near_repeat_ratio
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_default(),
                p.near_repeat_excess
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_default(),
            );
        }
        h.push_str("</table>\n");
    }
    if !view.repeat_cells.is_empty() {
        h.push_str(
            "<table>\n<tr><th>Rank</th><th class=\"l\">H3 cell</th><th class=\"l\">Category</th>\
             <th class=\"l\">Mahalla</th><th>Offences</th><th class=\"l\">First</th>\
             <th class=\"l\">Latest</th></tr>\n",
        );
        for c in &view.repeat_cells {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
                 <td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                c.rank,
                c.cell,
                esc(&c.category),
                esc(&c.mahalla_id),
                c.offences,
                c.first_offence.format("%Y-%m-%d %H:%M UTC"),
                c.last_offence.format("%Y-%m-%d %H:%M UTC"),
            );
        }
        h.push_str("</table>\n");
    }
}

/// "12 days since the last offence (2026-05-01)"; "an offence on the day,
/// after 40 days without one"; or, without one in the records, "at least
/// 40 days: no offence since the records began on 2026-04-01".
fn streak_text(s: &ScopeRow, days: i64) -> String {
    match s.last_offence {
        Some(_) if days == 0 => match s.crime_free_days_before {
            Some(before) if before > 0 => {
                format!("an offence on the day, after {before} days without one")
            }
            _ => "an offence on the day".to_owned(),
        },
        Some(d) => format!("{days} days since the last offence ({d})"),
        None => format!(
            "at least {days} days: no offence since the records began{}",
            s.records_since
                .map(|d| format!(" on {d}"))
                .unwrap_or_default()
        ),
    }
}

/// A text report for a terminal (`posbon report daily`).
pub fn to_text(view: &ScopeView) -> String {
    let s = &view.summary;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Daily situation report {} ({}): {}",
        view.date,
        view.time_zone,
        title(view)
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
        share(s.cyber_share),
        s.harm
    );
    let _ = writeln!(
        t,
        "  against 7 days: expected {}, z {}",
        baseline(s.baseline7, s.baseline7_days, 7),
        z(s.z7)
    );
    let _ = writeln!(
        t,
        "  against 28 days: expected {}, z {}",
        baseline(s.baseline28, s.baseline28_days, 28),
        z(s.z28)
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
                share(p.cyber_share),
                p.harm,
                z_cell(p.z7),
                z_cell(p.z28)
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
                focus_group_label(&f.focus_group),
                focus_count(f),
                z_cell(f.z7),
                z_cell(f.z28)
            );
        }
    }
    if s.scope == ScopeKind::Mahalla {
        if let Some(days) = s.crime_free_days {
            let _ = writeln!(t, "\nCrime-free streak: {}", streak_text(s, days));
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
                difficult_text(r),
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
            share(s.near_repeat_share),
            near_repeat_text(s)
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
