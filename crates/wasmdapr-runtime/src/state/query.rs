//! The state query API (`/v1.0-alpha1/state/{store}/query`): Dapr's query
//! language parsed into a typed [`Query`] and evaluated over the JSON values
//! of a store's [`scan`](super::StateStore::scan), batch by batch
//! ([`run`], [`Evaluation`]).
//!
//! ```json
//! { "filter": { "AND": [ { "EQ": { "person.org": "Dev Ops" } },
//!                        { "IN": { "state": ["CA", "WA"] } } ] },
//!   "sort":   [ { "key": "state", "order": "DESC" } ],
//!   "page":   { "limit": 3, "token": "3" } }
//! ```
//!
//! Keys are dot paths into the value. The page token is the offset of the
//! next page. Values that are not JSON objects never match a filter.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

use serde_json::Value;

use super::{ScanBatch, StateError, StateStore, StateValue};

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The filter; `None` matches everything.
    pub filter: Option<Filter>,
    /// Sort keys, most significant first.
    pub sort: Vec<SortKey>,
    /// At most this many results (`None`: all).
    pub limit: Option<usize>,
    /// Results to skip (from the page token).
    pub offset: usize,
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Field equals value.
    Eq(String, Value),
    /// Field differs from value.
    Neq(String, Value),
    /// Field greater than value.
    Gt(String, Value),
    /// Field greater than or equal to value.
    Gte(String, Value),
    /// Field less than value.
    Lt(String, Value),
    /// Field less than or equal to value.
    Lte(String, Value),
    /// Field equals one of the values.
    In(String, Vec<Value>),
    /// All hold.
    And(Vec<Filter>),
    /// One holds.
    Or(Vec<Filter>),
}

/// One sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// Dot path into the value.
    pub key: String,
    /// Descending instead of ascending.
    pub descending: bool,
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryItem {
    /// The key, without the app prefix.
    pub key: String,
    /// The value, as stored.
    pub data: Vec<u8>,
    /// Its ETag.
    pub etag: Option<String>,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryResponse {
    /// The rows of this page.
    pub results: Vec<QueryItem>,
    /// The token of the next page, when there may be one.
    pub token: Option<String>,
}

impl Query {
    /// Parses Dapr's query JSON, naming the part it cannot read.
    pub fn parse(json: &Value) -> Result<Self, String> {
        let obj = json.as_object().ok_or("the query must be a JSON object")?;
        let filter = match obj.get("filter") {
            None | Some(Value::Null) => None,
            Some(Value::Object(f)) if f.is_empty() => None,
            Some(f) => Some(parse_filter(f)?),
        };
        let mut sort = Vec::new();
        if let Some(keys) = obj.get("sort") {
            for key in keys.as_array().ok_or("`sort` must be an array")? {
                let name = key
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or("every `sort` entry needs a string `key`")?;
                let descending = match key.get("order").and_then(Value::as_str) {
                    None | Some("ASC") => false,
                    Some("DESC") => true,
                    Some(other) => return Err(format!("sort order `{other}` is not ASC or DESC")),
                };
                sort.push(SortKey {
                    key: name.to_owned(),
                    descending,
                });
            }
        }
        let (mut limit, mut offset) = (None, 0);
        if let Some(page) = obj.get("page") {
            if let Some(l) = page.get("limit") {
                let l = l
                    .as_u64()
                    .ok_or("`page.limit` must be a non-negative integer")?;
                limit = (l > 0).then_some(l as usize);
            }
            if let Some(token) = page.get("token").and_then(Value::as_str)
                && !token.is_empty()
            {
                offset = token
                    .parse()
                    .map_err(|_| format!("page token `{token}` is not one this store issued"))?;
            }
        }
        Ok(Query {
            filter,
            sort,
            limit,
            offset,
        })
    }
}

fn parse_filter(json: &Value) -> Result<Filter, String> {
    let obj = json
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| format!("a filter must be an object with one operator, got {json}"))?;
    let (op, arg) = obj.iter().next().expect("one entry");
    let field = |arg: &Value| -> Result<(String, Value), String> {
        let o = arg
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or_else(|| format!("`{op}` takes an object with one field"))?;
        let (k, v) = o.iter().next().expect("one entry");
        Ok((k.clone(), v.clone()))
    };
    let list = |arg: &Value| -> Result<Vec<Filter>, String> {
        let items = arg
            .as_array()
            .ok_or_else(|| format!("`{op}` takes an array of filters"))?;
        if items.len() < 2 {
            return Err(format!("`{op}` needs at least two filters"));
        }
        items.iter().map(parse_filter).collect()
    };
    Ok(match op.as_str() {
        "EQ" => field(arg).map(|(k, v)| Filter::Eq(k, v))?,
        "NEQ" => field(arg).map(|(k, v)| Filter::Neq(k, v))?,
        "GT" => field(arg).map(|(k, v)| Filter::Gt(k, v))?,
        "GTE" => field(arg).map(|(k, v)| Filter::Gte(k, v))?,
        "LT" => field(arg).map(|(k, v)| Filter::Lt(k, v))?,
        "LTE" => field(arg).map(|(k, v)| Filter::Lte(k, v))?,
        "IN" => {
            let (k, v) = field(arg)?;
            let Value::Array(values) = v else {
                return Err("`IN` takes an array of values".into());
            };
            Filter::In(k, values)
        }
        "AND" => Filter::And(list(arg)?),
        "OR" => Filter::Or(list(arg)?),
        other => return Err(format!("unknown filter operator `{other}`")),
    })
}

fn path<'a>(value: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(value, |v, part| v.get(part))
}

/// Orders JSON scalars: numbers numerically, strings lexically, and
/// missing < null < bool < number < string < anything else.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None => 0,
            Some(Value::Null) => 1,
            Some(Value::Bool(_)) => 2,
            Some(Value::Number(_)) => 3,
            Some(Value::String(_)) => 4,
            Some(_) => 5,
        }
    }
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn same(a: Option<&Value>, b: &Value) -> bool {
    match (a, b) {
        (Some(Value::Number(_)), Value::Number(_)) => compare(a, Some(b)) == Ordering::Equal,
        (Some(a), b) => a == b,
        (None, _) => false,
    }
}

impl Filter {
    /// Whether `value` passes this filter.
    pub fn matches(&self, value: &Value) -> bool {
        let ordered = |k: &str, v: &Value, ok: fn(Ordering) -> bool| {
            let field = path(value, k);
            // Only like compares with like: "10" is not greater than 9.
            let comparable = matches!(
                (field, v),
                (Some(Value::Number(_)), Value::Number(_))
                    | (Some(Value::String(_)), Value::String(_))
            );
            comparable && ok(compare(field, Some(v)))
        };
        match self {
            Filter::Eq(k, v) => same(path(value, k), v),
            Filter::Neq(k, v) => !same(path(value, k), v),
            Filter::Gt(k, v) => ordered(k, v, |o| o == Ordering::Greater),
            Filter::Gte(k, v) => ordered(k, v, |o| o != Ordering::Less),
            Filter::Lt(k, v) => ordered(k, v, |o| o == Ordering::Less),
            Filter::Lte(k, v) => ordered(k, v, |o| o != Ordering::Greater),
            Filter::In(k, vs) => vs.iter().any(|v| same(path(value, k), v)),
            Filter::And(fs) => fs.iter().all(|f| f.matches(value)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(value)),
        }
    }
}

/// Rows a query asks the store for at most at a time.
pub const SCAN_BATCH_ROWS: usize = 256;

/// Rows of the first batch of a query.
pub const SCAN_FIRST_BATCH_ROWS: usize = 8;

/// The bytes of values a batch should hold about at most: after a batch of
/// big values the next batch asks for fewer rows (down to one), so a store
/// of 4 MiB values is read a few rows at a time, not 256 of them.
pub const SCAN_BATCH_BYTES: usize = 8 << 20;

/// Runs `query` over the keys of `store` under `prefix`, batch by batch.
///
/// `accept` maps a stored key to the key the caller sees (without its app
/// prefix), or `None` for a row that is not the caller's. At any moment the
/// query holds one batch from the store and the rows its page can still
/// need (see [`Evaluation`]), never the whole store.
pub async fn run(
    store: &dyn StateStore,
    prefix: &str,
    query: &Query,
    mut accept: impl FnMut(&str) -> Option<String>,
) -> Result<QueryResponse, StateError> {
    let mut evaluation = Evaluation::new(query, store.scan_in_key_order());
    let mut cursor: Option<String> = None;
    // The first batch is small: nothing is known yet about value sizes.
    let mut batch = SCAN_FIRST_BATCH_ROWS;
    loop {
        let ScanBatch { rows, next } = store.scan(prefix, cursor.as_deref(), batch).await?;
        let bytes: usize = rows.iter().map(|(k, v)| k.len() + v.data.len()).sum();
        if !rows.is_empty() {
            let per_row = (bytes / rows.len()).max(1);
            batch = (SCAN_BATCH_BYTES / per_row).clamp(1, SCAN_BATCH_ROWS);
        }
        for (key, value) in rows {
            if let Some(key) = accept(&key)
                && evaluation.push(key, value).is_break()
            {
                return Ok(evaluation.finish());
            }
        }
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(evaluation.finish()),
        }
    }
}

/// A query being evaluated over rows that arrive a batch at a time.
///
/// It keeps only what the page can still need:
/// - rows arriving in key order (a store whose scan is in key order) and a
///   query without `sort`: the page itself; matches before the page's
///   offset are only counted, and the evaluation is over once the page is
///   full and one more match shows that there is a next page;
/// - otherwise: the best `offset + limit + 1` matches so far in the result
///   order (sort keys, then key), in an ordered map where a better match
///   evicts the worst. A key seen twice (an unordered scan may repeat one)
///   is held once, with its latest value.
///
/// Without a `limit` every match is part of the answer, so every match is
/// held: the answer itself is that big.
#[derive(Debug)]
pub struct Evaluation<'q> {
    query: &'q Query,
    /// Rows arrive in result order: keep the page and stop when it is full.
    in_order: bool,
    /// In-order mode: matches seen so far.
    matched: usize,
    /// In-order mode: the page so far.
    page: Vec<QueryItem>,
    /// Ranked mode: the best matches so far, worst last.
    ranked: BTreeMap<Rank, QueryItem>,
    /// Ranked mode: the rank of each key in `ranked`.
    ranks: HashMap<String, Rank>,
    /// A match beyond the page was seen.
    more: bool,
}

/// Where a row stands in the result order: its sort fields (each with its
/// direction), then its key, ascending, so that ties are ordered as a
/// stable sort by key would order them.
#[derive(Debug, Clone)]
struct Rank {
    fields: Vec<(Option<Value>, bool)>,
    key: String,
}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> Ordering {
        self.fields
            .iter()
            .zip(&other.fields)
            .map(|((a, descending), (b, _))| {
                let o = compare(a.as_ref(), b.as_ref());
                if *descending { o.reverse() } else { o }
            })
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
            .then_with(|| self.key.cmp(&other.key))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Rank {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Rank {}

impl<'q> Evaluation<'q> {
    /// A new evaluation of `query`; `in_key_order` says the rows will
    /// arrive once each in ascending key order.
    pub fn new(query: &'q Query, in_key_order: bool) -> Self {
        Self {
            query,
            in_order: in_key_order && query.sort.is_empty(),
            matched: 0,
            page: Vec::new(),
            ranked: BTreeMap::new(),
            ranks: HashMap::new(),
            more: false,
        }
    }

    /// How many matches the ranked mode keeps: up to the end of the page,
    /// and one more to know whether there is a next page.
    fn capacity(&self) -> Option<usize> {
        self.query
            .limit
            .map(|limit| self.query.offset.saturating_add(limit).saturating_add(1))
    }

    /// Rows held right now (the page so far, or the ranked matches).
    pub fn held(&self) -> usize {
        self.page.len() + self.ranked.len()
    }

    /// Takes one row (`key` without its app prefix); `Break` once no later
    /// row can change the answer.
    pub fn push(&mut self, key: String, value: StateValue) -> ControlFlow<()> {
        // Values that are not JSON never match, not even an empty filter.
        let Ok(json) = serde_json::from_slice::<Value>(&value.data) else {
            return ControlFlow::Continue(());
        };
        if !self.query.filter.as_ref().is_none_or(|f| f.matches(&json)) {
            return ControlFlow::Continue(());
        }
        let item = QueryItem {
            key,
            data: value.data,
            etag: value.etag,
        };
        if self.in_order {
            self.matched += 1;
            if self.matched <= self.query.offset {
                return ControlFlow::Continue(());
            }
            if self
                .query
                .limit
                .is_some_and(|limit| self.page.len() >= limit)
            {
                self.more = true;
                return ControlFlow::Break(());
            }
            self.page.push(item);
            return ControlFlow::Continue(());
        }
        let rank = Rank {
            fields: self
                .query
                .sort
                .iter()
                .map(|s| (path(&json, &s.key).cloned(), s.descending))
                .collect(),
            key: item.key.clone(),
        };
        if let Some(old) = self.ranks.remove(&item.key) {
            self.ranked.remove(&old);
        }
        if let Some(capacity) = self.capacity()
            && self.ranked.len() >= capacity
        {
            let worst = self
                .ranked
                .keys()
                .next_back()
                .expect("capacity is at least one");
            if rank > *worst {
                return ControlFlow::Continue(());
            }
            let (worst, _) = self.ranked.pop_last().expect("not empty");
            self.ranks.remove(&worst.key);
        }
        self.ranks.insert(item.key.clone(), rank.clone());
        self.ranked.insert(rank, item);
        ControlFlow::Continue(())
    }

    /// The page, and the token of the next one when there is one.
    pub fn finish(self) -> QueryResponse {
        let query = self.query;
        let (results, more) = if self.in_order {
            (self.page, self.more)
        } else {
            let total = self.ranked.len();
            let limit = query.limit.unwrap_or(usize::MAX);
            let page: Vec<QueryItem> = self
                .ranked
                .into_values()
                .skip(query.offset)
                .take(limit)
                .collect();
            let more = query.offset.saturating_add(page.len()) < total;
            (page, more)
        };
        let next = query.offset.saturating_add(results.len());
        let token = (query.limit.is_some() && more).then(|| next.to_string());
        QueryResponse { results, token }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows() -> Vec<(String, StateValue)> {
        [
            ("1", json!({"person": {"org": "Dev Ops", "id": 1036}, "city": "Seattle", "state": "WA"})),
            ("2", json!({"person": {"org": "Hardware", "id": 1028}, "city": "Portland", "state": "OR"})),
            ("3", json!({"person": {"org": "Finance", "id": 1071}, "city": "Sacramento", "state": "CA"})),
            ("4", json!({"person": {"org": "Dev Ops", "id": 1042}, "city": "Spokane", "state": "WA"})),
        ]
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                StateValue {
                    data: serde_json::to_vec(&v).unwrap(),
                    etag: Some(format!("e{k}")),
                    metadata: Default::default(),
                },
            )
        })
        .chain([(
            "raw".to_string(),
            StateValue {
                data: b"not json".to_vec(),
                etag: None,
                metadata: Default::default(),
            },
        )])
        .collect()
    }

    /// Evaluates `query` over `rows` (in key order, each key once) in both
    /// modes, in-order and ranked (the latter fed the rows in reverse, as an
    /// unordered scan might), and checks they agree.
    fn evaluate(query: &Query, rows: Vec<(String, StateValue)>) -> QueryResponse {
        let mut in_order = Evaluation::new(query, true);
        for (key, value) in rows.clone() {
            if in_order.push(key, value).is_break() {
                break;
            }
        }
        let mut ranked = Evaluation::new(query, false);
        for (key, value) in rows.into_iter().rev() {
            let _ = ranked.push(key, value);
        }
        let (in_order, ranked) = (in_order.finish(), ranked.finish());
        assert_eq!(in_order, ranked, "the two modes disagree on {query:?}");
        ranked
    }

    fn keys(q: serde_json::Value) -> (Vec<String>, Option<String>) {
        let r = evaluate(&Query::parse(&q).unwrap(), rows());
        (r.results.into_iter().map(|i| i.key).collect(), r.token)
    }

    /// EQ on a nested path, IN, AND/OR, and sorting descending by a number.
    #[test]
    fn filters_and_sorts() {
        assert_eq!(
            keys(json!({"filter": {"EQ": {"person.org": "Dev Ops"}}})).0,
            ["1", "4"]
        );
        assert_eq!(
            keys(json!({"filter": {"IN": {"state": ["CA", "OR"]}}})).0,
            ["2", "3"]
        );
        let and =
            json!({"filter": {"AND": [{"EQ": {"state": "WA"}}, {"GT": {"person.id": 1040}}]}});
        assert_eq!(keys(and).0, ["4"]);
        let or = json!({"filter": {"OR": [{"EQ": {"state": "CA"}}, {"EQ": {"city": "Seattle"}}]}});
        assert_eq!(keys(or).0, ["1", "3"]);
        let sorted = json!({"sort": [{"key": "person.id", "order": "DESC"}]});
        assert_eq!(keys(sorted).0, ["3", "4", "1", "2"]);
    }

    /// Pages follow the token until the end, and the last page has no token.
    #[test]
    fn pages() {
        let (first, token) = keys(json!({"page": {"limit": 3}}));
        assert_eq!(first, ["1", "2", "3"]);
        assert_eq!(token.as_deref(), Some("3"));
        let (rest, token) = keys(json!({"page": {"limit": 3, "token": "3"}}));
        assert_eq!(rest, ["4"]);
        assert_eq!(token, None);
    }

    /// Pages of a sorted query, with ties broken by key, and the edges of
    /// paging: a limit equal to the matches (no token), an offset past the
    /// end (empty, no token), no limit with an offset (the rest).
    #[test]
    fn page_edges() {
        let by_state =
            |page: serde_json::Value| keys(json!({"sort": [{"key": "state"}], "page": page}));
        // CA(3) < OR(2) < WA(1, 4): the two WA rows tie and go by key.
        assert_eq!(
            by_state(json!({"limit": 2})),
            (vec!["3".into(), "2".into()], Some("2".into()))
        );
        assert_eq!(
            by_state(json!({"limit": 2, "token": "2"})),
            (vec!["1".into(), "4".into()], None)
        );
        assert_eq!(by_state(json!({"limit": 4})).1, None);
        assert_eq!(by_state(json!({"limit": 2, "token": "9"})), (vec![], None));
        assert_eq!(by_state(json!({"token": "1"})).0, ["2", "1", "4"]);
        let unsorted = keys(json!({"page": {"token": "3"}}));
        assert_eq!(unsorted, (vec!["4".into()], None));
    }

    /// A duplicate key (an unordered scan may return one twice) is held
    /// once, with its latest value, and counts once towards the token.
    #[test]
    fn repeated_keys_count_once() {
        let query = Query::parse(&json!({"page": {"limit": 4}})).unwrap();
        let mut evaluation = Evaluation::new(&query, false);
        for (key, value) in rows().into_iter().chain(rows()) {
            let _ = evaluation.push(key, value);
        }
        assert_eq!(evaluation.held(), 4);
        let response = evaluation.finish();
        assert_eq!(response.results.len(), 4);
        assert_eq!(response.token, None, "4 distinct matches fit one page");
    }

    /// A page of a query over 50,000 rows of 1 KiB is right, and the
    /// evaluation never holds more than the page (+1) while the rows stream
    /// through it: in key order without a sort it also stops as soon as the
    /// page is full; sorted, it reads every row but keeps only the best.
    #[test]
    fn large_inputs_hold_only_a_page() {
        const ROWS: usize = 50_000;
        let row = |i: usize| {
            let value = json!({"n": i, "even": i.is_multiple_of(2), "pad": "x".repeat(1024)});
            (
                format!("k{i:06}"),
                StateValue {
                    data: serde_json::to_vec(&value).unwrap(),
                    etag: None,
                    metadata: Default::default(),
                },
            )
        };
        let n = |item: &QueryItem| -> u64 {
            serde_json::from_slice::<Value>(&item.data).unwrap()["n"]
                .as_u64()
                .unwrap()
        };
        // In key order, no sort: the third page of the even rows.
        let query = Query::parse(&json!({
            "filter": {"EQ": {"even": true}},
            "page": {"limit": 10, "token": "20"}
        }))
        .unwrap();
        let mut evaluation = Evaluation::new(&query, true);
        let mut read = 0;
        for i in 0..ROWS {
            let (key, value) = row(i);
            read += 1;
            let flow = evaluation.push(key, value);
            assert!(evaluation.held() <= 10, "held {} rows", evaluation.held());
            if flow.is_break() {
                break;
            }
        }
        assert!(read < 100, "read {read} rows for the third page of ten");
        let page = evaluation.finish();
        assert_eq!(
            page.results.iter().map(n).collect::<Vec<_>>(),
            (40..60).step_by(2).collect::<Vec<_>>()
        );
        assert_eq!(page.token.as_deref(), Some("30"));

        // Sorted descending, rows in no useful order: every row is read,
        // at most offset + limit + 1 are held.
        let query = Query::parse(&json!({
            "sort": [{"key": "n", "order": "DESC"}],
            "page": {"limit": 10, "token": "10"}
        }))
        .unwrap();
        let mut evaluation = Evaluation::new(&query, true);
        for i in (0..ROWS).map(|i| (i * 7919) % ROWS) {
            let (key, value) = row(i);
            assert!(evaluation.push(key, value).is_continue());
            assert!(evaluation.held() <= 21, "held {} rows", evaluation.held());
        }
        let page = evaluation.finish();
        let expected: Vec<u64> = (ROWS as u64 - 20..ROWS as u64 - 10).rev().collect();
        assert_eq!(page.results.iter().map(n).collect::<Vec<_>>(), expected);
        assert_eq!(page.token.as_deref(), Some("20"));
    }

    /// Malformed queries name the part that is wrong.
    #[test]
    fn bad_queries() {
        for (q, msg) in [
            (json!([]), "JSON object"),
            (
                json!({"filter": {"LIKE": {"a": 1}}}),
                "unknown filter operator `LIKE`",
            ),
            (
                json!({"filter": {"AND": [{"EQ": {"a": 1}}]}}),
                "at least two",
            ),
            (
                json!({"sort": [{"key": "a", "order": "UP"}]}),
                "ASC or DESC",
            ),
            (json!({"page": {"token": "x"}}), "page token"),
        ] {
            let err = Query::parse(&q).unwrap_err();
            assert!(err.contains(msg), "{err}");
        }
    }
}
