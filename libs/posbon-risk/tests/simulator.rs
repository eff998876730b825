//! The engine on the simulator's ground truth: recall of the injected
//! hotspots and fraud waves within 2 h of their start, and false escalations
//! per 1,000 quiet mahalla-days, on a fixed seed (simulated Tashkent, 2,000
//! events/h, 4 days of warm-up then 7 scored days).

use posbon_risk::sim::{SimEvalOptions, evaluate_report};

#[test]
fn recall_and_false_escalations_on_the_simulator() {
    let options = SimEvalOptions {
        seed: 7,
        ..SimEvalOptions::default()
    };
    let report = evaluate_report(&options).expect("the evaluation runs");
    println!("{report}");
    let eval = &report.evaluation;
    // Enough of everything for the figures to mean something.
    assert!(eval.episodes >= 60, "{eval:?}");
    assert!(
        eval.by_kind.len() == 2,
        "both kinds injected: {:?}",
        eval.by_kind
    );
    assert!(eval.quiet_mahalla_days >= 3000, "{eval:?}");
    assert_eq!(report.unassigned, 0);
    assert!(
        eval.recall() >= 0.90,
        "recall {:.3} below 0.90\n{report}",
        eval.recall()
    );
    assert!(
        eval.false_per_1000_quiet_days() <= 1.0,
        "{:.2} false escalations per 1,000 quiet mahalla-days\n{report}",
        eval.false_per_1000_quiet_days()
    );
    // Each episode on its own (without the situations piling up at one place).
    assert!(eval.strict_recall() >= 0.85, "{report}");
    // Detection is quick, not just within the 2 h.
    assert!(
        eval.median_delay_min().is_some_and(|m| m <= 45.0),
        "{report}"
    );
}
