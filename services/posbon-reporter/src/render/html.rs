//! The printable HTML page.

use std::fmt::Write as _;

use super::*;

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
