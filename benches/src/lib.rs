//! Posbon benchmarks: see `benches/`.
