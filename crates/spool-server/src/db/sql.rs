//! The one SQL seam between the metadata code and its two engines. Every
//! query in [`super`] is written once, against [`Tx`], in the subset of SQL
//! both SQLite and PostgreSQL speak: `?N` placeholders (PostgreSQL gets
//! `$N`), `GREATEST`/`LEAST` (SQLite's two-argument `MAX`/`MIN`), and
//! `FOR UPDATE SKIP LOCKED` on claims (dropped for SQLite, whose single
//! writer already serializes them). Values cross as a small dynamic type
//! ([`Value`]) bound to whatever type the engine expects and read back by
//! the column's type, so one function reads a row the same way from both.
//! Rows are materialized as they are read: the metadata queries return a
//! handful of rows, and nothing here then borrows the connection.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::DbError;

/// A value bound to, or read from, a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Something that binds as a statement parameter.
pub trait Param {
    fn value(&self) -> Result<Value, DbError>;
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn value(&self) -> Result<Value, DbError> {
                i64::try_from(*self)
                    .map(Value::Int)
                    .map_err(|_| DbError::Corrupt(format!("{self} does not fit a 64-bit integer")))
            }
        }
    )*};
}
int_param!(i64, u64, i32, u32, usize);

impl Param for bool {
    fn value(&self) -> Result<Value, DbError> {
        Ok(Value::Int(i64::from(*self)))
    }
}
impl Param for f64 {
    fn value(&self) -> Result<Value, DbError> {
        Ok(Value::Real(*self))
    }
}
impl Param for str {
    fn value(&self) -> Result<Value, DbError> {
        Ok(Value::Text(self.to_owned()))
    }
}
impl Param for String {
    fn value(&self) -> Result<Value, DbError> {
        Ok(Value::Text(self.clone()))
    }
}
impl Param for [u8] {
    fn value(&self) -> Result<Value, DbError> {
        Ok(Value::Blob(self.to_vec()))
    }
}
impl Param for Vec<u8> {
    fn value(&self) -> Result<Value, DbError> {
        Ok(Value::Blob(self.clone()))
    }
}
impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Result<Value, DbError> {
        (**self).value()
    }
}
impl<T: Param> Param for Option<T> {
    fn value(&self) -> Result<Value, DbError> {
        match self {
            Some(v) => v.value(),
            None => Ok(Value::Null),
        }
    }
}

/// A statement's parameters.
pub trait Params {
    fn values(&self) -> Result<Vec<Value>, DbError>;
}
impl Params for () {
    fn values(&self) -> Result<Vec<Value>, DbError> {
        Ok(Vec::new())
    }
}
impl Params for &[&dyn Param] {
    fn values(&self) -> Result<Vec<Value>, DbError> {
        self.iter().map(|p| p.value()).collect()
    }
}
impl<T: Param, const N: usize> Params for [T; N] {
    fn values(&self) -> Result<Vec<Value>, DbError> {
        self.iter().map(Param::value).collect()
    }
}
impl<T: Param> Params for Vec<T> {
    fn values(&self) -> Result<Vec<Value>, DbError> {
        self.iter().map(Param::value).collect()
    }
}

/// Parameters of mixed types, as rusqlite's macro of the same name.
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        &[$(&$p as &dyn $crate::db::sql::Param),*] as &[&dyn $crate::db::sql::Param]
    };
}
pub(crate) use params;

/// A value read from a row.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Result<Self, DbError>;
}

fn mismatch(v: &Value, want: &str) -> DbError {
    DbError::Corrupt(format!("expected {want}, found {v:?}"))
}

macro_rules! int_from {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> Result<Self, DbError> {
                match v {
                    Value::Int(i) => <$t>::try_from(*i).map_err(|_| mismatch(v, stringify!($t))),
                    _ => Err(mismatch(v, stringify!($t))),
                }
            }
        }
    )*};
}
int_from!(i64, u64, i32, u32, usize);

impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self, DbError> {
        match v {
            Value::Int(i) => Ok(*i != 0),
            _ => Err(mismatch(v, "a boolean")),
        }
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value) -> Result<Self, DbError> {
        match v {
            Value::Real(f) => Ok(*f),
            #[allow(clippy::cast_precision_loss)]
            Value::Int(i) => Ok(*i as f64),
            _ => Err(mismatch(v, "a number")),
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self, DbError> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            _ => Err(mismatch(v, "text")),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Result<Self, DbError> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            _ => Err(mismatch(v, "bytes")),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self, DbError> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One row, read whole.
pub struct Row {
    names: std::sync::Arc<[String]>,
    values: Vec<Value>,
}

/// A column by position or by name.
pub trait RowIndex {
    fn index(&self, row: &Row) -> Result<usize, DbError>;
}
impl RowIndex for usize {
    fn index(&self, row: &Row) -> Result<usize, DbError> {
        (*self < row.values.len())
            .then_some(*self)
            .ok_or_else(|| DbError::Corrupt(format!("no column {self}")))
    }
}
impl RowIndex for &str {
    fn index(&self, row: &Row) -> Result<usize, DbError> {
        row.names
            .iter()
            .position(|n| n == self)
            .ok_or_else(|| DbError::Corrupt(format!("no column {self:?}")))
    }
}

impl Row {
    pub fn get<I: RowIndex, T: FromValue>(&self, idx: I) -> Result<T, DbError> {
        let i = idx.index(self)?;
        T::from_value(&self.values[i])
            .map_err(|e| DbError::Corrupt(format!("column {}: {e}", self.names[i])))
    }
}

/// `.optional()` on a single-row query, as rusqlite's extension trait.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>, DbError>;
}
impl<T> OptionalExtension<T> for Result<T, DbError> {
    fn optional(self) -> Result<Option<T>, DbError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A PostgreSQL connection with the statements it has prepared.
pub struct PgConn {
    pub client: postgres::Client,
    pub statements: HashMap<String, postgres::Statement>,
}

/// A PostgreSQL transaction and its connection's statement cache.
pub struct PgTx<'a> {
    pub tx: postgres::Transaction<'a>,
    pub statements: &'a mut HashMap<String, postgres::Statement>,
}

/// An open transaction on either engine.
pub enum Tx<'a> {
    Lite(&'a rusqlite::Transaction<'a>),
    Pg(RefCell<PgTx<'a>>),
}

/// The text of `sql` for SQLite: the PostgreSQL-only spellings replaced.
pub(crate) fn for_sqlite(sql: &str) -> Cow<'_, str> {
    if !sql.contains("GREATEST(") && !sql.contains("LEAST(") && !sql.contains("FOR UPDATE") {
        return Cow::Borrowed(sql);
    }
    Cow::Owned(
        sql.replace("GREATEST(", "MAX(")
            .replace("LEAST(", "MIN(")
            .replace(" FOR UPDATE SKIP LOCKED", "")
            .replace(" FOR UPDATE", ""),
    )
}

/// The text of `sql` for PostgreSQL: `?N` placeholders as `$N` (outside
/// quoted strings and names).
pub(crate) fn for_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '?' => {
                out.push('$');
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                #[allow(clippy::cast_precision_loss)]
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => i.to_string().to_sql(ty, out),
            },
            Value::Real(f) => f.to_sql(ty, out),
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn lite_row(row: &rusqlite::Row<'_>, names: &std::sync::Arc<[String]>) -> rusqlite::Result<Row> {
    use rusqlite::types::ValueRef;
    let values = (0..names.len())
        .map(|i| {
            Ok(match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Int(i),
                ValueRef::Real(f) => Value::Real(f),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            })
        })
        .collect::<rusqlite::Result<_>>()?;
    Ok(Row {
        names: names.clone(),
        values,
    })
}

fn pg_row(row: &postgres::Row) -> Result<Row, DbError> {
    let names: std::sync::Arc<[String]> =
        row.columns().iter().map(|c| c.name().to_owned()).collect();
    let mut values = Vec::with_capacity(names.len());
    for (i, col) in row.columns().iter().enumerate() {
        let v = match *col.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Value::Real),
            Type::FLOAT4 => row
                .try_get::<_, Option<f32>>(i)?
                .map(|v| Value::Real(v.into())),
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            _ => row.try_get::<_, Option<String>>(i)?.map(Value::Text),
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(Row { names, values })
}

impl<'a> Tx<'a> {
    fn pg_statement(
        pg: &mut PgTx<'_>,
        sql: &str,
        cache: bool,
    ) -> Result<postgres::Statement, DbError> {
        if let Some(s) = pg.statements.get(sql) {
            return Ok(s.clone());
        }
        let text = for_postgres(sql);
        let stmt = pg.tx.prepare(&text)?;
        if cache {
            pg.statements.insert(sql.to_owned(), stmt.clone());
        }
        Ok(stmt)
    }

    /// Runs `sql` and reads every row it returns.
    fn run(&self, sql: &str, params: &dyn Params, cache: bool) -> Result<Vec<Row>, DbError> {
        let values = params.values()?;
        match self {
            Tx::Lite(tx) => {
                let text = for_sqlite(sql);
                // Every statement through the connection's cache: the
                // metadata code runs a small fixed set of them.
                let _ = cache;
                let mut stmt = tx.prepare_cached(&text)?;
                let names: std::sync::Arc<[String]> =
                    stmt.column_names().into_iter().map(str::to_owned).collect();
                let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(lite_row(row, &names)?);
                }
                Ok(out)
            }
            Tx::Pg(pg) => {
                let mut pg = pg.borrow_mut();
                let stmt = Self::pg_statement(&mut pg, sql, cache)?;
                let refs: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                let rows = pg.tx.query(&stmt, &refs)?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// Runs a statement that changes rows; how many it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize, DbError> {
        let values = params.values()?;
        match self {
            Tx::Lite(tx) => {
                let text = for_sqlite(sql);
                Ok(tx
                    .prepare_cached(&text)?
                    .execute(rusqlite::params_from_iter(values.iter()))?)
            }
            Tx::Pg(pg) => {
                let mut pg = pg.borrow_mut();
                let stmt = Self::pg_statement(&mut pg, sql, true)?;
                let refs: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                let n = pg.tx.execute(&stmt, &refs)?;
                usize::try_from(n).map_err(|_| DbError::Corrupt(format!("{n} rows")))
            }
        }
    }

    /// Runs statements without parameters, one after another.
    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        match self {
            Tx::Lite(tx) => Ok(tx.execute_batch(&for_sqlite(sql))?),
            Tx::Pg(pg) => Ok(pg.borrow_mut().tx.batch_execute(sql)?),
        }
    }

    /// The first row `sql` returns, through `f`; [`DbError::NoRows`] if none.
    pub fn query_row<P: Params, T>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let rows = self.run(sql, &params, true)?;
        rows.first().map_or(Err(DbError::NoRows), f)
    }

    /// Every row `sql` returns, each through `f`.
    pub fn query_map<P: Params, T>(
        &self,
        sql: &str,
        params: P,
        f: impl FnMut(&Row) -> Result<T, DbError>,
    ) -> Result<std::vec::IntoIter<Result<T, DbError>>, DbError> {
        let rows = self.run(sql, &params, true)?;
        Ok(rows.iter().map(f).collect::<Vec<_>>().into_iter())
    }

    /// A statement to run (possibly many times): prepared once per
    /// connection by the engine's cache.
    pub fn prepare_cached<'s>(&'s self, sql: &'s str) -> Result<Stmt<'s, 'a>, DbError> {
        Ok(Stmt { tx: self, sql })
    }

    /// As [`Tx::prepare_cached`]: the engines cache what they prepare.
    pub fn prepare<'s>(&'s self, sql: &'s str) -> Result<Stmt<'s, 'a>, DbError> {
        Ok(Stmt { tx: self, sql })
    }
}

/// A statement bound to its transaction.
pub struct Stmt<'s, 'a> {
    tx: &'s Tx<'a>,
    sql: &'s str,
}

impl Stmt<'_, '_> {
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize, DbError> {
        self.tx.execute(self.sql, params)
    }
    pub fn query_row<P: Params, T>(
        &mut self,
        params: P,
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.tx.query_row(self.sql, params, f)
    }
    pub fn query_map<P: Params, T>(
        &mut self,
        params: P,
        f: impl FnMut(&Row) -> Result<T, DbError>,
    ) -> Result<std::vec::IntoIter<Result<T, DbError>>, DbError> {
        self.tx.query_map(self.sql, params, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            for_postgres(r#"UPDATE t SET "a?" = ?2, b = '?x' WHERE id = ?1"#),
            r#"UPDATE t SET "a?" = $2, b = '?x' WHERE id = $1"#
        );
    }

    #[test]
    fn postgres_spellings_become_sqlite() {
        assert_eq!(
            for_sqlite("SELECT GREATEST(a, ?1) FROM t WHERE x LIMIT 1 FOR UPDATE SKIP LOCKED"),
            "SELECT MAX(a, ?1) FROM t WHERE x LIMIT 1"
        );
        assert!(matches!(for_sqlite("SELECT 1"), Cow::Borrowed(_)));
    }

    #[test]
    fn values_convert_both_ways() {
        assert_eq!(u64::MAX.value().ok(), None);
        assert_eq!(Some(5u64).value().unwrap(), Value::Int(5));
        assert_eq!(Option::<u64>::from_value(&Value::Null).unwrap(), None);
        assert!(u64::from_value(&Value::Int(-1)).is_err());
        assert!(bool::from_value(&Value::Int(1)).unwrap());
    }
}
