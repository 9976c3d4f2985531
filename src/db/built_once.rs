//! Diesel's multi-engine connection renders a query's SQL text at every pass over it: to ask
//! whether it may be cached, to key the statement cache, to collect its bind values. That is
//! two or three renderings per execution, each allocating for every quoted identifier, even
//! when the statement is already prepared: a quarter of the card's CPU and a fifth of the
//! SQLite writer's in the benchmark's profiles. [`BuiltOnce`] renders it once per execution,
//! and a statement whose text follows from its type alone only once per thread.

use std::any::TypeId;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

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
    sql: OnceCell<Rc<str>>,
    /// Whether it may be kept prepared: the connection asks at every pass over the statement
    /// (twice per execution), and the answer walks the whole query.
    cacheable: OnceCell<bool>,
    fixed_update: bool,
}

thread_local! {
    /// The text of statements with a static query id, by that id and engine. Diesel keys its
    /// own statement cache the same way: such a statement's SQL cannot vary with its values
    /// (IN lists, boxed and other dynamic parts have no static id).
    static STATIC_SQL: RefCell<HashMap<(TypeId, bool), Rc<str>>> = RefCell::new(HashMap::new());
}

/// Wraps a complete query before it runs: `built_once(query.limit(1)).get_result(conn)`.
pub fn built_once<Q>(query: Q) -> BuiltOnce<Q> {
    BuiltOnce {
        query,
        sql: OnceCell::new(),
        cacheable: OnceCell::new(),
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

impl<Q: QueryFragment<MultiBackend>> BuiltOnce<Q> {
    /// The statement's text in a builder of its own.
    fn render(&self, backend: &MultiBackend) -> QueryResult<String> {
        let mut own = match backend {
            MultiBackend::Postgresql(_) => MultiQueryBuilder::Postgresql(PgQueryBuilder::default()),
            MultiBackend::Sqlite(_) => MultiQueryBuilder::Sqlite(SqliteQueryBuilder::default()),
        };
        self.query.to_sql(&mut own, backend)?;
        Ok(own.finish())
    }
}

impl<Q: QueryFragment<MultiBackend> + QueryId> QueryFragment<MultiBackend> for BuiltOnce<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        self.query.walk_ast(pass)
    }

    fn to_sql(&self, out: &mut MultiQueryBuilder, backend: &MultiBackend) -> QueryResult<()> {
        if self.sql.get().is_none() {
            let key = Q::query_id().map(|id| (id, matches!(backend, MultiBackend::Postgresql(_))));
            let known = key.and_then(|key| STATIC_SQL.with_borrow(|m| m.get(&key).cloned()));
            let sql = match known {
                // A static query id fixes both the text and whether it may be kept prepared
                // (diesel keys its statement cache on that id), and only cacheable statements
                // are kept in `STATIC_SQL`.
                Some(sql) => {
                    debug_assert!(self.query.is_safe_to_cache_prepared(backend)?);
                    let _ = self.cacheable.set(true);
                    sql
                }
                None => {
                    let sql: Rc<str> = self.render(backend)?.into();
                    if let Some(key) = key
                        && self.is_safe_to_cache_prepared(backend)?
                    {
                        STATIC_SQL.with_borrow_mut(|m| m.insert(key, sql.clone()));
                    }
                    sql
                }
            };
            let _ = self.sql.set(sql);
        }
        out.push_sql(self.sql.get().map_or("", |sql| sql));
        Ok(())
    }

    fn is_safe_to_cache_prepared(&self, backend: &MultiBackend) -> QueryResult<bool> {
        if let Some(&cacheable) = self.cacheable.get() {
            return Ok(cacheable);
        }
        let cacheable = self.fixed_update || self.query.is_safe_to_cache_prepared(backend)?;
        let _ = self.cacheable.set(cacheable);
        Ok(cacheable)
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
