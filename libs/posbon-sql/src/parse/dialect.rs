//! [`Bounded`]: a SQL dialect that behaves exactly as the dialect it
//! wraps, and counts the parser's calls into it against a budget.
//!
//! One concept, long by nature: the [`Dialect`] trait has 161 methods, each
//! forwarded here, so that every choice the wrapped dialect makes (and
//! `dialect_of!`, through [`Dialect::dialect`]) stays the same. Each
//! forward first counts a step. The parser asks its dialect something at
//! nearly every token and every alternative it tries, so the steps follow
//! its work, backtracking included. The forwards are written by
//! `scripts/gen-bounded-dialect.py` from sqlparser's `src/dialect/mod.rs`;
//! regenerate them when sqlparser is upgraded (a method the trait gained
//! and this file lacks would take the trait's default, not the wrapped
//! dialect's; `parse::budget_tests` parse a corpus both ways and compare).

use std::any::TypeId;
use std::cell::Cell;
use std::iter::Peekable;
use std::str::Chars;
use std::time::Instant;

use datafusion::sql::sqlparser::ast::{
    ColumnOption, Expr, GranteesType, Ident, ObjectNamePart, Statement,
};
use datafusion::sql::sqlparser::dialect::{Dialect, Precedence};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};

/// A dialect that parses as `inner` does, within a budget of steps (calls
/// into the dialect) and a deadline (looked at every [`CLOCK_EVERY`]
/// steps). The step past either unwinds out of the parser with a [`Stop`]
/// (by `resume_unwind`: no panic hook, no message), which [`within_budget`]
/// catches: sqlparser's backtracking swallows some errors and retries, so
/// an error could not be relied on to end the parse. The deadline bounds
/// what the steps may not: work between two calls into the dialect (a long
/// list read with none, a long run of whitespace or a large literal looked
/// at again on each try).
#[derive(Debug)]
pub(crate) struct Bounded {
    inner: Box<dyn Dialect>,
    budget: u64,
    deadline: Instant,
    steps: Cell<u64>,
}

/// How often, in steps, [`Bounded`] looks at the clock.
const CLOCK_EVERY: u64 = 1024;

/// Why a parse was stopped: the unwind payload of [`Bounded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// It took more steps than its budget.
    Budget,
    /// It ran past its deadline.
    Time,
}

impl Bounded {
    /// `inner`, allowed `budget` steps until `deadline`.
    pub(crate) fn new(inner: Box<dyn Dialect>, budget: u64, deadline: Instant) -> Self {
        Self {
            inner,
            budget,
            deadline,
            steps: Cell::new(0),
        }
    }

    /// The steps taken so far.
    pub(crate) fn steps(&self) -> u64 {
        self.steps.get()
    }

    /// Counts one step, and ends the parse past the budget or the deadline.
    fn step(&self) {
        let steps = self.steps.get().saturating_add(1);
        self.steps.set(steps);
        if steps > self.budget {
            std::panic::resume_unwind(Box::new(Stop::Budget));
        }
        if steps.is_multiple_of(CLOCK_EVERY) && Instant::now() >= self.deadline {
            std::panic::resume_unwind(Box::new(Stop::Time));
        }
    }
}

/// Runs `parse` with `dialect`: its result, or why [`Bounded`] stopped it.
/// Any other panic goes on unwinding. (The workspace builds with
/// `panic = "unwind"`, the default; the tests of the refusals would abort
/// with `panic = "abort"`.)
pub(crate) fn within_budget<T>(
    dialect: &Bounded,
    parse: impl FnOnce(&Bounded) -> T,
) -> Result<T, Stop> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(dialect))) {
        Ok(result) => Ok(result),
        Err(payload) => match payload.downcast::<Stop>() {
            Ok(stop) => Err(*stop),
            Err(payload) => std::panic::resume_unwind(payload),
        },
    }
}

impl Dialect for Bounded {
    fn dialect(&self) -> TypeId {
        self.step();
        self.inner.dialect()
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.step();
        self.inner.is_delimited_identifier_start(ch)
    }

    fn is_nested_delimited_identifier_start(&self, ch: char) -> bool {
        self.step();
        self.inner.is_nested_delimited_identifier_start(ch)
    }

    fn peek_nested_delimited_identifier_quotes(
        &self,
        chars: Peekable<Chars<'_>>,
    ) -> Option<(char, Option<char>)> {
        self.step();
        self.inner.peek_nested_delimited_identifier_quotes(chars)
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.step();
        self.inner.identifier_quote_style(identifier)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        self.step();
        self.inner.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.step();
        self.inner.is_identifier_part(ch)
    }

    fn is_custom_operator_part(&self, ch: char) -> bool {
        self.step();
        self.inner.is_custom_operator_part(ch)
    }

    fn supports_string_literal_backslash_escape(&self) -> bool {
        self.step();
        self.inner.supports_string_literal_backslash_escape()
    }

    fn ignores_wildcard_escapes(&self) -> bool {
        self.step();
        self.inner.ignores_wildcard_escapes()
    }

    fn supports_unicode_string_literal(&self) -> bool {
        self.step();
        self.inner.supports_unicode_string_literal()
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        self.step();
        self.inner.supports_filter_during_aggregation()
    }

    fn supports_window_clause_named_window_reference(&self) -> bool {
        self.step();
        self.inner.supports_window_clause_named_window_reference()
    }

    fn supports_within_after_array_aggregation(&self) -> bool {
        self.step();
        self.inner.supports_within_after_array_aggregation()
    }

    fn supports_partition_by_after_order_by(&self) -> bool {
        self.step();
        self.inner.supports_partition_by_after_order_by()
    }

    fn supports_array_join_syntax(&self) -> bool {
        self.step();
        self.inner.supports_array_join_syntax()
    }

    fn supports_group_by_expr(&self) -> bool {
        self.step();
        self.inner.supports_group_by_expr()
    }

    fn supports_group_by_with_modifier(&self) -> bool {
        self.step();
        self.inner.supports_group_by_with_modifier()
    }

    fn supports_left_associative_joins_without_parens(&self) -> bool {
        self.step();
        self.inner.supports_left_associative_joins_without_parens()
    }

    fn supports_outer_join_operator(&self) -> bool {
        self.step();
        self.inner.supports_outer_join_operator()
    }

    fn supports_cross_join_constraint(&self) -> bool {
        self.step();
        self.inner.supports_cross_join_constraint()
    }

    fn supports_connect_by(&self) -> bool {
        self.step();
        self.inner.supports_connect_by()
    }

    fn supports_execute_immediate(&self) -> bool {
        self.step();
        self.inner.supports_execute_immediate()
    }

    fn supports_match_recognize(&self) -> bool {
        self.step();
        self.inner.supports_match_recognize()
    }

    fn supports_in_empty_list(&self) -> bool {
        self.step();
        self.inner.supports_in_empty_list()
    }

    fn supports_start_transaction_modifier(&self) -> bool {
        self.step();
        self.inner.supports_start_transaction_modifier()
    }

    fn supports_end_transaction_modifier(&self) -> bool {
        self.step();
        self.inner.supports_end_transaction_modifier()
    }

    fn supports_named_fn_args_with_eq_operator(&self) -> bool {
        self.step();
        self.inner.supports_named_fn_args_with_eq_operator()
    }

    fn supports_named_fn_args_with_colon_operator(&self) -> bool {
        self.step();
        self.inner.supports_named_fn_args_with_colon_operator()
    }

    fn supports_named_fn_args_with_assignment_operator(&self) -> bool {
        self.step();
        self.inner.supports_named_fn_args_with_assignment_operator()
    }

    fn supports_named_fn_args_with_rarrow_operator(&self) -> bool {
        self.step();
        self.inner.supports_named_fn_args_with_rarrow_operator()
    }

    fn supports_named_fn_args_with_expr_name(&self) -> bool {
        self.step();
        self.inner.supports_named_fn_args_with_expr_name()
    }

    fn supports_numeric_prefix(&self) -> bool {
        self.step();
        self.inner.supports_numeric_prefix()
    }

    fn supports_numeric_literal_underscores(&self) -> bool {
        self.step();
        self.inner.supports_numeric_literal_underscores()
    }

    fn supports_window_function_null_treatment_arg(&self) -> bool {
        self.step();
        self.inner.supports_window_function_null_treatment_arg()
    }

    fn supports_dictionary_syntax(&self) -> bool {
        self.step();
        self.inner.supports_dictionary_syntax()
    }

    fn support_map_literal_syntax(&self) -> bool {
        self.step();
        self.inner.support_map_literal_syntax()
    }

    fn supports_lambda_functions(&self) -> bool {
        self.step();
        self.inner.supports_lambda_functions()
    }

    fn supports_parenthesized_set_variables(&self) -> bool {
        self.step();
        self.inner.supports_parenthesized_set_variables()
    }

    fn supports_comma_separated_set_assignments(&self) -> bool {
        self.step();
        self.inner.supports_comma_separated_set_assignments()
    }

    fn supports_update_order_by(&self) -> bool {
        self.step();
        self.inner.supports_update_order_by()
    }

    fn supports_select_wildcard_except(&self) -> bool {
        self.step();
        self.inner.supports_select_wildcard_except()
    }

    fn convert_type_before_value(&self) -> bool {
        self.step();
        self.inner.convert_type_before_value()
    }

    fn supports_triple_quoted_string(&self) -> bool {
        self.step();
        self.inner.supports_triple_quoted_string()
    }

    fn parse_prefix(&self, parser: &mut Parser<'_>) -> Option<Result<Expr, ParserError>> {
        self.step();
        self.inner.parse_prefix(parser)
    }

    fn supports_trailing_commas(&self) -> bool {
        self.step();
        self.inner.supports_trailing_commas()
    }

    fn supports_limit_comma(&self) -> bool {
        self.step();
        self.inner.supports_limit_comma()
    }

    fn supports_string_literal_concatenation(&self) -> bool {
        self.step();
        self.inner.supports_string_literal_concatenation()
    }

    fn supports_string_literal_concatenation_with_newline(&self) -> bool {
        self.step();
        self.inner
            .supports_string_literal_concatenation_with_newline()
    }

    fn supports_projection_trailing_commas(&self) -> bool {
        self.step();
        self.inner.supports_projection_trailing_commas()
    }

    fn supports_from_trailing_commas(&self) -> bool {
        self.step();
        self.inner.supports_from_trailing_commas()
    }

    fn supports_column_definition_trailing_commas(&self) -> bool {
        self.step();
        self.inner.supports_column_definition_trailing_commas()
    }

    fn supports_object_name_double_dot_notation(&self) -> bool {
        self.step();
        self.inner.supports_object_name_double_dot_notation()
    }

    fn supports_struct_literal(&self) -> bool {
        self.step();
        self.inner.supports_struct_literal()
    }

    fn supports_empty_projections(&self) -> bool {
        self.step();
        self.inner.supports_empty_projections()
    }

    fn supports_select_expr_star(&self) -> bool {
        self.step();
        self.inner.supports_select_expr_star()
    }

    fn supports_from_first_select(&self) -> bool {
        self.step();
        self.inner.supports_from_first_select()
    }

    fn supports_from_first_insert(&self) -> bool {
        self.step();
        self.inner.supports_from_first_insert()
    }

    fn supports_pipe_operator(&self) -> bool {
        self.step();
        self.inner.supports_pipe_operator()
    }

    fn supports_user_host_grantee(&self) -> bool {
        self.step();
        self.inner.supports_user_host_grantee()
    }

    fn supports_match_against(&self) -> bool {
        self.step();
        self.inner.supports_match_against()
    }

    fn supports_select_wildcard_exclude(&self) -> bool {
        self.step();
        self.inner.supports_select_wildcard_exclude()
    }

    fn supports_select_exclude(&self) -> bool {
        self.step();
        self.inner.supports_select_exclude()
    }

    fn supports_create_table_multi_schema_info_sources(&self) -> bool {
        self.step();
        self.inner.supports_create_table_multi_schema_info_sources()
    }

    fn supports_select_modifiers(&self) -> bool {
        self.step();
        self.inner.supports_select_modifiers()
    }

    fn parse_infix(
        &self,
        parser: &mut Parser<'_>,
        expr: &Expr,
        precedence: u8,
    ) -> Option<Result<Expr, ParserError>> {
        self.step();
        self.inner.parse_infix(parser, expr, precedence)
    }

    fn get_next_precedence(&self, parser: &Parser<'_>) -> Option<Result<u8, ParserError>> {
        self.step();
        self.inner.get_next_precedence(parser)
    }

    fn get_next_precedence_default(&self, parser: &Parser<'_>) -> Result<u8, ParserError> {
        self.step();
        self.inner.get_next_precedence_default(parser)
    }

    fn parse_statement(&self, parser: &mut Parser<'_>) -> Option<Result<Statement, ParserError>> {
        self.step();
        self.inner.parse_statement(parser)
    }

    fn parse_column_option(
        &self,
        parser: &mut Parser<'_>,
    ) -> Result<Option<Result<Option<ColumnOption>, ParserError>>, ParserError> {
        self.step();
        self.inner.parse_column_option(parser)
    }

    fn prec_value(&self, prec: Precedence) -> u8 {
        self.step();
        self.inner.prec_value(prec)
    }

    fn prec_unknown(&self) -> u8 {
        self.step();
        self.inner.prec_unknown()
    }

    fn describe_requires_table_keyword(&self) -> bool {
        self.step();
        self.inner.describe_requires_table_keyword()
    }

    fn allow_extract_custom(&self) -> bool {
        self.step();
        self.inner.allow_extract_custom()
    }

    fn allow_extract_single_quotes(&self) -> bool {
        self.step();
        self.inner.allow_extract_single_quotes()
    }

    fn supports_extract_comma_syntax(&self) -> bool {
        self.step();
        self.inner.supports_extract_comma_syntax()
    }

    fn supports_subquery_as_function_arg(&self) -> bool {
        self.step();
        self.inner.supports_subquery_as_function_arg()
    }

    fn supports_create_view_comment_syntax(&self) -> bool {
        self.step();
        self.inner.supports_create_view_comment_syntax()
    }

    fn supports_array_typedef_without_element_type(&self) -> bool {
        self.step();
        self.inner.supports_array_typedef_without_element_type()
    }

    fn supports_parens_around_table_factor(&self) -> bool {
        self.step();
        self.inner.supports_parens_around_table_factor()
    }

    fn supports_values_as_table_factor(&self) -> bool {
        self.step();
        self.inner.supports_values_as_table_factor()
    }

    fn supports_dollar_placeholder(&self) -> bool {
        self.step();
        self.inner.supports_dollar_placeholder()
    }

    fn supports_dollar_as_money_prefix(&self) -> bool {
        self.step();
        self.inner.supports_dollar_as_money_prefix()
    }

    fn supports_create_index_with_clause(&self) -> bool {
        self.step();
        self.inner.supports_create_index_with_clause()
    }

    fn require_interval_qualifier(&self) -> bool {
        self.step();
        self.inner.require_interval_qualifier()
    }

    fn supports_explain_with_utility_options(&self) -> bool {
        self.step();
        self.inner.supports_explain_with_utility_options()
    }

    fn supports_asc_desc_in_column_definition(&self) -> bool {
        self.step();
        self.inner.supports_asc_desc_in_column_definition()
    }

    fn supports_factorial_operator(&self) -> bool {
        self.step();
        self.inner.supports_factorial_operator()
    }

    fn supports_bitwise_shift_operators(&self) -> bool {
        self.step();
        self.inner.supports_bitwise_shift_operators()
    }

    fn supports_nested_comments(&self) -> bool {
        self.step();
        self.inner.supports_nested_comments()
    }

    fn supports_multiline_comment_hints(&self) -> bool {
        self.step();
        self.inner.supports_multiline_comment_hints()
    }

    fn supports_eq_alias_assignment(&self) -> bool {
        self.step();
        self.inner.supports_eq_alias_assignment()
    }

    fn supports_try_convert(&self) -> bool {
        self.step();
        self.inner.supports_try_convert()
    }

    fn supports_bang_not_operator(&self) -> bool {
        self.step();
        self.inner.supports_bang_not_operator()
    }

    fn supports_listen_notify(&self) -> bool {
        self.step();
        self.inner.supports_listen_notify()
    }

    fn supports_load_data(&self) -> bool {
        self.step();
        self.inner.supports_load_data()
    }

    fn supports_load_extension(&self) -> bool {
        self.step();
        self.inner.supports_load_extension()
    }

    fn supports_top_before_distinct(&self) -> bool {
        self.step();
        self.inner.supports_top_before_distinct()
    }

    fn supports_boolean_literals(&self) -> bool {
        self.step();
        self.inner.supports_boolean_literals()
    }

    fn supports_show_like_before_in(&self) -> bool {
        self.step();
        self.inner.supports_show_like_before_in()
    }

    fn supports_comment_on(&self) -> bool {
        self.step();
        self.inner.supports_comment_on()
    }

    fn supports_create_table_select(&self) -> bool {
        self.step();
        self.inner.supports_create_table_select()
    }

    fn supports_partiql(&self) -> bool {
        self.step();
        self.inner.supports_partiql()
    }

    fn supports_constraint_keyword_without_name(&self) -> bool {
        self.step();
        self.inner.supports_constraint_keyword_without_name()
    }

    fn supports_key_column_option(&self) -> bool {
        self.step();
        self.inner.supports_key_column_option()
    }

    fn is_reserved_for_identifier(&self, kw: Keyword) -> bool {
        self.step();
        self.inner.is_reserved_for_identifier(kw)
    }

    fn get_reserved_keywords_for_select_item_operator(&self) -> &[Keyword] {
        self.step();
        self.inner.get_reserved_keywords_for_select_item_operator()
    }

    fn get_reserved_grantees_types(&self) -> &[GranteesType] {
        self.step();
        self.inner.get_reserved_grantees_types()
    }

    fn supports_table_sample_before_alias(&self) -> bool {
        self.step();
        self.inner.supports_table_sample_before_alias()
    }

    fn supports_insert_set(&self) -> bool {
        self.step();
        self.inner.supports_insert_set()
    }

    fn supports_insert_table_function(&self) -> bool {
        self.step();
        self.inner.supports_insert_table_function()
    }

    fn supports_insert_table_query(&self) -> bool {
        self.step();
        self.inner.supports_insert_table_query()
    }

    fn supports_insert_format(&self) -> bool {
        self.step();
        self.inner.supports_insert_format()
    }

    fn supports_insert_table_alias(&self) -> bool {
        self.step();
        self.inner.supports_insert_table_alias()
    }

    fn supports_set_stmt_without_operator(&self) -> bool {
        self.step();
        self.inner.supports_set_stmt_without_operator()
    }

    fn is_column_alias(&self, kw: &Keyword, parser: &mut Parser<'_>) -> bool {
        self.step();
        self.inner.is_column_alias(kw, parser)
    }

    fn is_select_item_alias(&self, explicit: bool, kw: &Keyword, parser: &mut Parser<'_>) -> bool {
        self.step();
        self.inner.is_select_item_alias(explicit, kw, parser)
    }

    fn is_table_factor(&self, kw: &Keyword, parser: &mut Parser<'_>) -> bool {
        self.step();
        self.inner.is_table_factor(kw, parser)
    }

    fn is_table_alias(&self, kw: &Keyword, parser: &mut Parser<'_>) -> bool {
        self.step();
        self.inner.is_table_alias(kw, parser)
    }

    fn is_table_factor_alias(&self, explicit: bool, kw: &Keyword, parser: &mut Parser<'_>) -> bool {
        self.step();
        self.inner.is_table_factor_alias(explicit, kw, parser)
    }

    fn supports_table_versioning(&self) -> bool {
        self.step();
        self.inner.supports_table_versioning()
    }

    fn supports_string_escape_constant(&self) -> bool {
        self.step();
        self.inner.supports_string_escape_constant()
    }

    fn supports_table_hints(&self) -> bool {
        self.step();
        self.inner.supports_table_hints()
    }

    fn requires_single_line_comment_whitespace(&self) -> bool {
        self.step();
        self.inner.requires_single_line_comment_whitespace()
    }

    fn supports_array_typedef_with_brackets(&self) -> bool {
        self.step();
        self.inner.supports_array_typedef_with_brackets()
    }

    fn supports_geometric_types(&self) -> bool {
        self.step();
        self.inner.supports_geometric_types()
    }

    fn supports_order_by_all(&self) -> bool {
        self.step();
        self.inner.supports_order_by_all()
    }

    fn supports_set_names(&self) -> bool {
        self.step();
        self.inner.supports_set_names()
    }

    fn supports_space_separated_column_options(&self) -> bool {
        self.step();
        self.inner.supports_space_separated_column_options()
    }

    fn supports_alter_column_type_using(&self) -> bool {
        self.step();
        self.inner.supports_alter_column_type_using()
    }

    fn supports_comma_separated_drop_column_list(&self) -> bool {
        self.step();
        self.inner.supports_comma_separated_drop_column_list()
    }

    fn is_identifier_generating_function_name(
        &self,
        ident: &Ident,
        name_parts: &[ObjectNamePart],
    ) -> bool {
        self.step();
        self.inner
            .is_identifier_generating_function_name(ident, name_parts)
    }

    fn supports_notnull_operator(&self) -> bool {
        self.step();
        self.inner.supports_notnull_operator()
    }

    fn supports_data_type_signed_suffix(&self) -> bool {
        self.step();
        self.inner.supports_data_type_signed_suffix()
    }

    fn supports_interval_options(&self) -> bool {
        self.step();
        self.inner.supports_interval_options()
    }

    fn supports_create_table_like_parenthesized(&self) -> bool {
        self.step();
        self.inner.supports_create_table_like_parenthesized()
    }

    fn supports_semantic_view_table_factor(&self) -> bool {
        self.step();
        self.inner.supports_semantic_view_table_factor()
    }

    fn supports_quote_delimited_string(&self) -> bool {
        self.step();
        self.inner.supports_quote_delimited_string()
    }

    fn supports_comment_optimizer_hint(&self) -> bool {
        self.step();
        self.inner.supports_comment_optimizer_hint()
    }

    fn supports_double_ampersand_operator(&self) -> bool {
        self.step();
        self.inner.supports_double_ampersand_operator()
    }

    fn supports_binary_kw_as_cast(&self) -> bool {
        self.step();
        self.inner.supports_binary_kw_as_cast()
    }

    fn supports_select_wildcard_replace(&self) -> bool {
        self.step();
        self.inner.supports_select_wildcard_replace()
    }

    fn supports_select_wildcard_ilike(&self) -> bool {
        self.step();
        self.inner.supports_select_wildcard_ilike()
    }

    fn supports_select_wildcard_rename(&self) -> bool {
        self.step();
        self.inner.supports_select_wildcard_rename()
    }

    fn supports_select_wildcard_with_alias(&self) -> bool {
        self.step();
        self.inner.supports_select_wildcard_with_alias()
    }

    fn supports_optimize_table(&self) -> bool {
        self.step();
        self.inner.supports_optimize_table()
    }

    fn supports_install(&self) -> bool {
        self.step();
        self.inner.supports_install()
    }

    fn supports_detach(&self) -> bool {
        self.step();
        self.inner.supports_detach()
    }

    fn supports_prewhere(&self) -> bool {
        self.step();
        self.inner.supports_prewhere()
    }

    fn supports_with_fill(&self) -> bool {
        self.step();
        self.inner.supports_with_fill()
    }

    fn supports_limit_by(&self) -> bool {
        self.step();
        self.inner.supports_limit_by()
    }

    fn supports_interpolate(&self) -> bool {
        self.step();
        self.inner.supports_interpolate()
    }

    fn supports_settings(&self) -> bool {
        self.step();
        self.inner.supports_settings()
    }

    fn supports_select_format(&self) -> bool {
        self.step();
        self.inner.supports_select_format()
    }

    fn supports_comma_separated_trim(&self) -> bool {
        self.step();
        self.inner.supports_comma_separated_trim()
    }

    fn supports_cte_without_as(&self) -> bool {
        self.step();
        self.inner.supports_cte_without_as()
    }

    fn supports_select_item_multi_column_alias(&self) -> bool {
        self.step();
        self.inner.supports_select_item_multi_column_alias()
    }

    fn supports_xml_expressions(&self) -> bool {
        self.step();
        self.inner.supports_xml_expressions()
    }

    fn supports_create_table_using(&self) -> bool {
        self.step();
        self.inner.supports_create_table_using()
    }

    fn supports_long_type_as_bigint(&self) -> bool {
        self.step();
        self.inner.supports_long_type_as_bigint()
    }

    fn supports_map_literal_with_angle_brackets(&self) -> bool {
        self.step();
        self.inner.supports_map_literal_with_angle_brackets()
    }
}
