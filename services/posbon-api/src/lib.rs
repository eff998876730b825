//! Posbon API: live escalation feed, escalation lifecycle, SQL, reports and the command-centre page
