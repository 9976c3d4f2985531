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
use diesel::internal::derives::multiconnection::AstPassHelper;
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
    /// Whether it may be kept prepared: the connection asks at each of its passes over the
    /// statement, and the answer walks the whole query.
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

impl<Q: QueryFragment<MultiBackend> + QueryId> BuiltOnce<Q> {
    /// The statement's text in a builder of its own.
    fn render(&self, backend: &MultiBackend) -> QueryResult<String> {
        let mut own = match backend {
            MultiBackend::Postgresql(_) => MultiQueryBuilder::Postgresql(PgQueryBuilder::default()),
            MultiBackend::Sqlite(_) => MultiQueryBuilder::Sqlite(SqliteQueryBuilder::default()),
        };
        self.query.to_sql(&mut own, backend)?;
        Ok(own.finish())
    }

    /// The statement's text, rendered at most once per execution, and once per thread for a
    /// statement with a static query id.
    fn sql(&self, backend: &MultiBackend) -> QueryResult<&str> {
        if let Some(sql) = self.sql.get() {
            return Ok(sql);
        }
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
                    && self.cacheable(backend)?
                {
                    STATIC_SQL.with_borrow_mut(|m| m.insert(key, sql.clone()));
                }
                sql
            }
        };
        Ok(self.sql.get_or_init(|| sql))
    }

    fn cacheable(&self, backend: &MultiBackend) -> QueryResult<bool> {
        if let Some(&cacheable) = self.cacheable.get() {
            return Ok(cacheable);
        }
        let cacheable = self.fixed_update || self.query.is_safe_to_cache_prepared(backend)?;
        let _ = self.cacheable.set(cacheable);
        Ok(cacheable)
    }
}

/// Everything happens in `walk_ast`: the connection executes a statement through a reference
/// to it, and diesel's `QueryFragment for &T` forwards `walk_ast` alone, so overriding
/// `to_sql` or `is_safe_to_cache_prepared` would be skipped for every INSERT and UPDATE.
impl<Q: QueryFragment<MultiBackend> + QueryId> QueryFragment<MultiBackend> for BuiltOnce<Q> {
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        // Collecting the bind values (or their debug output) needs the whole query.
        if pass.bind_collector().is_some() || pass.debug_binds().is_some() {
            return self.query.walk_ast(pass);
        }
        // The passes that render the text, ask whether it may be cached, or whether it is a
        // no-op: each is answered from what was worked out once.
        let backend = pass.backend();
        let (sql, cacheable) = (self.sql(backend)?, self.cacheable(backend)?);
        pass.push_sql(sql);
        if !cacheable {
            pass.unsafe_to_cache_prepared();
        }
        Ok(())
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
