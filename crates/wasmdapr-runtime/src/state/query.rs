//! The state query API (`/v1.0-alpha1/state/{store}/query`): Dapr's query
//! language parsed into a typed [`Query`] and evaluated over the JSON values
//! of a store's [`scan`](super::StateStore::scan).
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

use serde_json::Value;

use super::StateValue;

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

/// Filters, sorts and pages `rows` (`(unprefixed key, value)`).
///
/// Rows are first ordered by key so that pages are stable between calls.
pub fn evaluate(query: &Query, rows: Vec<(String, StateValue)>) -> QueryResponse {
    let mut rows: Vec<(String, StateValue, Value)> = rows
        .into_iter()
        .filter_map(|(key, value)| {
            let json: Value = serde_json::from_slice(&value.data).ok()?;
            let keep = query.filter.as_ref().is_none_or(|f| f.matches(&json));
            keep.then_some((key, value, json))
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.sort_by(|a, b| {
        query
            .sort
            .iter()
            .map(|s| {
                let o = compare(path(&a.2, &s.key), path(&b.2, &s.key));
                if s.descending { o.reverse() } else { o }
            })
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
    let total = rows.len();
    let page: Vec<QueryItem> = rows
        .into_iter()
        .skip(query.offset)
        .take(query.limit.unwrap_or(usize::MAX))
        .map(|(key, value, _)| QueryItem {
            key,
            data: value.data,
            etag: value.etag,
        })
        .collect();
    let next = query.offset + page.len();
    let token = (query.limit.is_some() && next < total).then(|| next.to_string());
    QueryResponse {
        results: page,
        token,
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
