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

/// A printable HTML page of the view in `lang` (`<html lang>` follows it).
pub fn to_html(view: &ScopeView, lang: Lang) -> String {
    let s = &view.summary;
    let t = |key: &str| esc(&lang.t(&format!("report.{key}")));
    let n = |v: i64| lang.number(v);
    let mut h = String::new();
    let title = title(lang, view);
    let date = lang.date(view.date);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
         <title>{page_title}</title>\
         <style>body{{font-family:sans-serif;margin:2em;color:#111}}\
         table{{border-collapse:collapse;margin:1em 0}}th,td{{border:1px solid #999;padding:2px 8px;text-align:right}}\
         th{{background:#eee}}td.l,th.l{{text-align:left}}h1{{font-size:1.4em}}h2{{font-size:1.1em;margin-top:1.5em}}\
         @media print{{body{{margin:0}}h2{{page-break-after:avoid}}table{{page-break-inside:auto}}}}</style>\
         </head><body>\n<h1>{heading}</h1>\n<p>{intro}</p>\n",
        code = lang.code(),
        page_title = esc(&lang.f("report.page_title", &[("date", &date), ("title", &title)])),
        heading = esc(&lang.f("report.heading", &[("title", &title)])),
        intro = esc(&lang.f("report.intro", &[("date", &date), ("tz", &view.time_zone)])),
    );
    let _ = writeln!(h, "<h2>{}</h2>\n<table>", t("summary"));
    let rows: [(&str, String); 16] = [
        ("events", n(s.events)),
        ("incidents", n(s.incidents)),
        ("camera_alerts", n(s.camera_alerts)),
        ("fraud_flags", n(s.fraud_flags)),
        ("offences", n(s.offences)),
        ("cyber_share", share(lang, s.cyber_share)),
        ("harm", n(s.harm)),
        (
            "baseline7",
            baseline(lang, s.baseline7, s.baseline7_days, 7),
        ),
        ("z7", z(lang, s.z7)),
        (
            "baseline28",
            baseline(lang, s.baseline28, s.baseline28_days, 28),
        ),
        ("z28", z(lang, s.z28)),
        (
            "camera_baseline7",
            baseline(lang, s.camera_alerts_baseline7, s.baseline7_days, 7),
        ),
        ("camera_z7", z(lang, s.camera_alerts_z7)),
        ("escalations_opened", n(s.escalations_opened)),
        ("escalations_closed", n(s.escalations_closed)),
        (
            "crime_free_mahallas",
            lang.f(
                "report.n_of_m",
                &[("n", &n(s.crime_free_mahallas)), ("m", &n(s.mahallas))],
            ),
        ),
    ];
    for (key, value) in rows {
        let _ = writeln!(
            h,
            "<tr><th class=\"l\">{}</th><td>{}</td></tr>",
            t(key),
            esc(&value)
        );
    }
    h.push_str("</table>\n");
    if !view.parts.is_empty() {
        let _ = writeln!(
            h,
            "<h2>{}</h2>\n<table>\n<tr><th class=\"l\">{}</th><th class=\"l\">{}</th>\
            <th>{}</th><th>{}</th><th>{}</th><th>z7</th><th>z28</th>\
            <th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("by_area"),
            t("area"),
            t("id"),
            t("offences"),
            t("cyber"),
            t("harm_short"),
            t("esc_opened_short"),
            t("esc_closed_short"),
            t("crime_free"),
            t("days_since_offence"),
        );
        for p in &view.parts {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
                esc(&area_name(lang, p)),
                esc(&p.scope_id),
                n(p.offences),
                esc(&share(lang, p.cyber_share)),
                n(p.harm),
                z_cell(lang, p.z7),
                z_cell(lang, p.z28),
                n(p.escalations_opened),
                n(p.escalations_closed),
                n(p.crime_free_mahallas),
                n(p.mahallas),
                esc(&days_since_offence(lang, p))
            );
        }
        h.push_str("</table>\n");
    }
    html_focus_groups(&mut h, view, lang);
    html_streaks(&mut h, view, lang);
    html_difficult(&mut h, view, lang);
    html_recurrence(&mut h, view, lang);
    let _ = writeln!(
        h,
        "<h2>{}</h2>\n<table>\n<tr><th class=\"l\">{}</th>\
        <th class=\"l\">{}</th><th>{}</th><th>{}</th></tr>",
        t("by_kind"),
        t("kind"),
        t("category"),
        t("events"),
        t("harm_short"),
    );
    for c in &view.categories {
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.kind),
            esc(&c.category),
            n(c.events),
            n(c.harm)
        );
    }
    let _ = writeln!(
        h,
        "</table>\n<h2>{}</h2>\n<table>\n<tr><th>{}</th>\
        <th class=\"l\">{}</th><th>{}</th><th>{}</th></tr>",
        t("hottest_cells"),
        t("rank"),
        t("h3_cell"),
        t("events"),
        t("harm_short"),
    );
    for c in &view.hot_cells {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
            c.rank,
            c.cell,
            n(c.events),
            n(c.harm)
        );
    }
    let _ = write!(
        h,
        "</table>\n<h2>{}</h2>\n<p>",
        esc(&lang.f(
            "report.crime_free_title",
            &[(
                "count",
                &n(i64::try_from(view.crime_free.count).unwrap_or(i64::MAX))
            )]
        ))
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

/// An area's name as the report shows it: the part outside every mahalla
/// in `lang`, any other by its registry name.
fn area_name(lang: Lang, r: &ScopeRow) -> String {
    if r.scope == ScopeKind::Unassigned {
        lang.t("report.outside")
    } else {
        r.name.clone()
    }
}

fn html_focus_groups(h: &mut String, view: &ScopeView, lang: Lang) {
    let t = |key: &str| esc(&lang.t(&format!("report.{key}")));
    let s = &view.summary;
    let own: Vec<&FocusGroupRow> = FOCUS_GROUPS
        .iter()
        .filter_map(|g| focus(view, s, g))
        .collect();
    if own.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<h2>{}</h2>\n<table>\n<tr><th class=\"l\">{}</th><th>{}</th>\
         <th>{}</th><th>{}</th><th>{}</th></tr>",
        t("focus_groups"),
        t("group"),
        t("offences"),
        t("baseline7"),
        t("z7"),
        t("z28"),
    );
    for f in own {
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&focus_label(lang, &f.focus_group)),
            esc(&focus_count_in(lang, f)),
            esc(&baseline(lang, f.baseline7, Some(f.baseline7_days), 7)),
            esc(&z(lang, f.z7)),
            esc(&z(lang, f.z28)),
        );
    }
    h.push_str("</table>\n");
    if view.parts.is_empty() {
        return;
    }
    let _ = write!(h, "<table>\n<tr><th class=\"l\">{}</th>", t("area"));
    for g in FOCUS_GROUPS {
        let _ = write!(h, "<th>{}</th>", esc(&focus_label(lang, g)));
    }
    h.push_str("</tr>\n");
    for p in &view.parts {
        let _ = write!(h, "<tr><td class=\"l\">{}</td>", esc(&area_name(lang, p)));
        for g in FOCUS_GROUPS {
            let cell = focus(view, p, g)
                .map(|f| focus_count_in(lang, f))
                .unwrap_or_default();
            let _ = write!(h, "<td>{}</td>", esc(&cell));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

fn html_streaks(h: &mut String, view: &ScopeView, lang: Lang) {
    let t = |key: &str| esc(&lang.t(&format!("report.{key}")));
    let s = &view.summary;
    if s.scope == ScopeKind::Mahalla {
        if let Some(days) = s.crime_free_days {
            let _ = writeln!(
                h,
                "<h2>{}</h2>\n<p>{}</p>",
                t("streak"),
                esc(&streak_text(lang, s, days))
            );
        }
        return;
    }
    let Some(streaks) = &view.streaks else {
        return;
    };
    let since = streaks
        .records_since
        .map(|d| lang.f("report.streaks_since", &[("date", &d)]))
        .unwrap_or_default();
    let _ = writeln!(
        h,
        "<h2>{}</h2>\n<p>{}</p>\n\
         <table>\n<tr><th>{}</th><th>{}</th>\
         <th class=\"l\">{}</th><th class=\"l\">{}</th></tr>",
        t("streaks"),
        esc(&lang.f("report.streaks_intro", &[("since", &since)])),
        t("streak_at_least"),
        t("mahallas"),
        t("joined_today"),
        t("left_today"),
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
    for s in &streaks.thresholds {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            esc(&lang.f("report.n_days", &[("n", &s.days)])),
            lang.number(s.count),
            esc(&names(&s.joined)),
            esc(&names(&s.left))
        );
    }
    h.push_str("</table>\n");
}

fn html_difficult(h: &mut String, view: &ScopeView, lang: Lang) {
    let t = |key: &str| esc(&lang.t(&format!("report.{key}")));
    let d = &view.difficult;
    if view.summary.difficult_mahallas.is_none() && d.mahallas.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<h2>{}</h2>\n<p>{}</p>",
        esc(&lang.f("report.difficult_title", &[("count", &d.mahallas.len())])),
        esc(&lang.f(
            "report.difficult_intro",
            &[
                ("newly", &d.newly().count()),
                ("recovered", &d.recovered.len())
            ]
        )),
    );
    if d.mahallas.is_empty() && d.recovered.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<table>\n<tr><th class=\"l\">{}</th><th class=\"l\">{}</th>\
         <th class=\"l\">{}</th><th class=\"l\">{}</th><th class=\"l\">{}</th>\
         <th>{}</th><th>{}</th><th class=\"l\">{}</th>\
         <th>{}</th><th class=\"l\">{}</th></tr>",
        t("mahalla"),
        t("district"),
        t("status"),
        t("since"),
        t("difficult_days"),
        t("offences_7d"),
        t("offences_prev_7d"),
        t("trend"),
        t("open_escalations"),
        t("inspector"),
    );
    for r in d.mahallas.iter().chain(&d.recovered) {
        let status = match (r.is_difficult(), r.newly) {
            (true, true) => t("newly_difficult"),
            (true, false) => t("difficult"),
            _ => t("recovered"),
        };
        let open = match &r.open_level {
            Some(level) => format!("{} ({level})", r.open_escalations),
            None => r.open_escalations.to_string(),
        };
        let trend = match r.trend.as_str() {
            known @ ("rising" | "falling" | "steady") => lang.t(&format!("report.trend_{known}")),
            other => other.to_owned(),
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
            r.difficult_since.map(|d| lang.date(d)).unwrap_or_default(),
            esc(&difficult_text(lang, r)),
            lang.number(r.offences_7d),
            lang.number(r.offences_prev_7d),
            esc(&trend),
            esc(&open),
            esc(r.inspector.as_deref().unwrap_or("–")),
        );
    }
    h.push_str("</table>\n");
}

fn html_recurrence(h: &mut String, view: &ScopeView, lang: Lang) {
    let t = |key: &str| esc(&lang.t(&format!("report.{key}")));
    let s = &view.summary;
    let Some(place) = s.place_offences else {
        return;
    };
    let _ = writeln!(
        h,
        "<h2>{}</h2>\n<p>{}</p>\n<table>\n\
         <tr><th class=\"l\">{}</th><td>{}</td></tr>\n\
         <tr><th class=\"l\">{}</th><td>{}</td></tr>\n\
         <tr><th class=\"l\">{}</th><td>{}</td></tr>\n</table>",
        t("recurrence_title"),
        esc(&lang.f(
            "report.recurrence_intro",
            &[
                ("place", &lang.number(place)),
                ("cells", &count(lang, s.repeat_cells)),
                ("offences", &count(lang, s.repeat_offences)),
            ]
        )),
        t("near_repeats"),
        count(lang, s.near_repeat_offences),
        t("share_of_offences"),
        esc(&share(lang, s.near_repeat_share)),
        t("ratio_shuffled"),
        esc(&near_repeat_text(lang, s)),
    );
    let districts: Vec<&ScopeRow> = view
        .parts
        .iter()
        .filter(|p| p.near_repeat_ratio.is_some())
        .collect();
    if !districts.is_empty() {
        let _ = writeln!(
            h,
            "<table>\n<tr><th class=\"l\">{}</th><th>{}</th>\
             <th>{}</th><th>{}</th><th>{}</th><th>{}</th>\
             <th>{}</th></tr>",
            t("area"),
            t("place_offences"),
            t("repeat_cells"),
            t("near_repeats"),
            t("share"),
            t("ratio"),
            t("beyond_chance"),
        );
        for p in districts {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td></tr>",
                esc(&area_name(lang, p)),
                count(lang, p.place_offences),
                count(lang, p.repeat_cells),
                count(lang, p.near_repeat_offences),
                esc(&share(lang, p.near_repeat_share)),
                p.near_repeat_ratio
                    .map(|v| lang.decimal(v, 2, false))
                    .unwrap_or_default(),
                p.near_repeat_excess
                    .map(|v| lang.decimal(v, 2, false))
                    .unwrap_or_default(),
            );
        }
        h.push_str("</table>\n");
    }
    if !view.repeat_cells.is_empty() {
        let _ = writeln!(
            h,
            "<table>\n<tr><th>{}</th><th class=\"l\">{}</th><th class=\"l\">{}</th>\
             <th class=\"l\">{}</th><th>{}</th><th class=\"l\">{}</th>\
             <th class=\"l\">{}</th></tr>",
            t("rank"),
            t("h3_cell"),
            t("category"),
            t("mahalla"),
            t("offences"),
            t("first"),
            t("latest"),
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
                lang.number(c.offences),
                c.first_offence.format("%Y-%m-%d %H:%M UTC"),
                c.last_offence.format("%Y-%m-%d %H:%M UTC"),
            );
        }
        h.push_str("</table>\n");
    }
}
