//! The message on `posbon.reports.daily`: a summary of a new report.

use bytes::Bytes;
use chrono::NaiveDate;
use posbon_bus::subjects::REPORTS_DAILY;
use posbon_bus::{Bus, Headers};
use serde::{Deserialize, Serialize};

use crate::error::ReportError;
use crate::report::{DailyReport, ScopeKind, ScopeRow};

/// The header that carries the report's date.
pub(crate) const REPORT_DATE_HEADER: &str = "Posbon-Report-Date";

/// What `posbon.reports.daily` carries when a report is made: the nation,
/// region and district rows (the mahalla rows of a national report would
/// exceed a NATS message), and where to read the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportNotice {
    /// The local date.
    pub date: NaiveDate,
    /// Its time zone.
    pub time_zone: String,
    /// The nation's row.
    pub nation: ScopeRow,
    /// One row per region.
    pub regions: Vec<ScopeRow>,
    /// One row per district.
    pub districts: Vec<ScopeRow>,
    /// The events outside every mahalla.
    pub unassigned: Option<ScopeRow>,
    /// The whole report over HTTP (any scope, JSON, CSV or HTML).
    pub report: String,
}

impl ReportNotice {
    /// The notice of `report`.
    pub(crate) fn of(report: &DailyReport) -> Result<Self, ReportError> {
        let of = |kind: ScopeKind| -> Vec<ScopeRow> {
            report
                .scopes
                .iter()
                .filter(|r| r.scope == kind)
                .cloned()
                .collect()
        };
        let nation = of(ScopeKind::Nation).into_iter().next().ok_or_else(|| {
            ReportError::Internal(format!("the report of {} has no nation row", report.date))
        })?;
        Ok(Self {
            date: report.date,
            time_zone: report.time_zone.clone(),
            nation,
            regions: of(ScopeKind::Region),
            districts: of(ScopeKind::District),
            unassigned: of(ScopeKind::Unassigned).into_iter().next(),
            report: format!("/v1/reports/daily?date={}&scope=nation", report.date),
        })
    }
}

/// Publishes the notice of `report` on `posbon.reports.daily`.
pub(crate) async fn publish(bus: &dyn Bus, report: &DailyReport) -> Result<(), ReportError> {
    let notice = ReportNotice::of(report)?;
    let payload = serde_json::to_vec(&notice)
        .map_err(|e| ReportError::Internal(format!("cannot encode the report notice: {e}")))?;
    let headers = Headers::with_capacity(1).with(REPORT_DATE_HEADER, report.date.to_string());
    bus.core_publish(REPORTS_DAILY, headers, Bytes::from(payload))
        .await
        .map_err(|e| ReportError::Internal(format!("cannot publish the daily report: {e}")))
}
