//! Diesel's multi-engine connection renders a query's SQL text at every pass over it: to ask
//! whether it may be cached, to key the statement cache, to collect its bind values. That is
//! two or three renderings per execution, each allocating for every quoted identifier, even
//! when the statement is already prepared: a quarter of the card's CPU and a fifth of the
//! SQLite writer's in the benchmark's profiles. [`BuiltOnce`] renders it once per execution.

use std::cell::OnceCell;

use diesel::backend::Backend;
use diesel::pg::PgQueryBuilder;
use diesel::query_builder::{AstPass, Query, QueryBuilder, QueryFragment, QueryId};
use diesel::sqlite::SqliteQueryBuilder;
use diesel::{QueryResult, RunQueryDsl};

use super::MultiBackend;

type MultiQueryBuilder = <MultiBackend as Backend>::QueryBuilder;

/// A whole statement (never a part of one: its text is rendered into a builder of its own, with
/// PostgreSQL's placeholders numbered from `$1`, as the connection does for every statement).
pub struct BuiltOnce<Q> {
    query: Q,
    sql: OnceCell<String>,
    fixed_update: bool,
}

/// Wraps a complete query before it runs: `built_once(query.limit(1)).get_result(conn)`.
pub fn built_once<Q>(query: Q) -> BuiltOnce<Q> {
    BuiltOnce {
        query,
        sql: OnceCell::new(),
        fixed_update: false,
    }
}

/// `query.built_once()`, for the end of a query chain.
pub trait BuildOnce: Sized {
    fn built_once(self) -> BuiltOnce<Self> {
        built_once(self)
    }
}

impl<Q> BuildOnce for Q {}

/// An UPDATE of one fixed shape, which is also kept prepared like any other statement. Diesel
/// prepares every UPDATE afresh (a changeset of optional fields can take many shapes); on the
/// hot write paths (audit chain, read marks) that compiling cost more than running it. The
/// statement cache keys it by its SQL text, so each shape it ever takes is one entry.
pub fn fixed_update<Q>(query: Q) -> BuiltOnce<Q> {
    BuiltOnce {
        fixed_update: true,
        ..built_once(query)
    }
}

impl<Q: QueryFragment<MultiBackend>> QueryFragment<MultiBackend> for BuiltOnce<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        self.query.walk_ast(pass)
    }

    fn to_sql(&self, out: &mut MultiQueryBuilder, backend: &MultiBackend) -> QueryResult<()> {
        if self.sql.get().is_none() {
            let mut own = match backend {
                MultiBackend::Postgresql(_) => {
                    MultiQueryBuilder::Postgresql(PgQueryBuilder::default())
                }
                MultiBackend::Sqlite(_) => MultiQueryBuilder::Sqlite(SqliteQueryBuilder::default()),
            };
            self.query.to_sql(&mut own, backend)?;
            let _ = self.sql.set(own.finish());
        }
        out.push_sql(self.sql.get().map_or("", String::as_str));
        Ok(())
    }

    fn is_safe_to_cache_prepared(&self, backend: &MultiBackend) -> QueryResult<bool> {
        if self.fixed_update {
            return Ok(true);
        }
        self.query.is_safe_to_cache_prepared(backend)
    }

    fn is_noop(&self, backend: &MultiBackend) -> QueryResult<bool> {
        self.query.is_noop(backend)
    }
}

impl<Q: QueryId> QueryId for BuiltOnce<Q> {
    type QueryId = Q::QueryId;
    const HAS_STATIC_QUERY_ID: bool = Q::HAS_STATIC_QUERY_ID;
}

impl<Q: Query> Query for BuiltOnce<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> RunQueryDsl<Conn> for BuiltOnce<Q> {}
