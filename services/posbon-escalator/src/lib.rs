//! Posbon escalator: per-mahalla risk state from EVENTS, escalations to ALERTS
