//! Posbon SQL: DataFusion table providers over the event store, H3 functions, report SQL
