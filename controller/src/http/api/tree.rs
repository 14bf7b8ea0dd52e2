//! Jenkins' `?tree=` filter on `/api/json`: `tree=jobs[name,color],builds[number]{0,5}`
//! keeps only the named keys (and `_class`, which Jenkins always sends), recursively, with
//! an optional `{from,to}` range on arrays. Clients use it to ask for less
//! (python-jenkins' `get_job_name` asks for `tree=name`, `get_all_jobs` for
//! `tree=jobs[url,color,name,…]`), and for what is only sent on request (`allBuilds`).
//!
//! Parsing is pure and bounded: the expression is at most [`MAX_TREE_LEN`] bytes and
//! [`MAX_TREE_DEPTH`] levels deep.

use serde_json::{Map, Value};

/// Longest `tree` expression accepted (python-jenkins' deepest is a few hundred bytes).
pub const MAX_TREE_LEN: usize = 4096;
/// Deepest nesting accepted; deeper than any JSON Steward sends.
pub const MAX_TREE_DEPTH: usize = 16;

/// A parsed `tree` expression: the keys to keep at one level.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    keys: Vec<Key>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    name: String,
    /// What to keep below it; `None` keeps all of it.
    children: Option<Tree>,
    /// `{from,to}`: the array elements kept, `to` exclusive.
    range: Option<(usize, Option<usize>)>,
}

/// What a tree keeps of one top-level key: [`Tree::part`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Part<'a> {
    pub children: Option<&'a Tree>,
    /// `{from,to}`: the array elements kept, `to` exclusive.
    pub range: Option<(usize, Option<usize>)>,
}

impl Part<'_> {
    /// Whether the element at `index` of the array is kept.
    pub fn keeps(&self, index: usize) -> bool {
        match self.range {
            None => true,
            Some((from, to)) => index >= from && to.is_none_or(|to| index < to),
        }
    }

    /// One element of the array, filtered.
    pub fn apply(&self, value: Value) -> Value {
        match self.children {
            Some(tree) => tree.apply(value),
            None => value,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Malformed tree expression: {0}")]
pub struct TreeError(String);

impl Tree {
    /// Parses a `tree` query value.
    pub fn parse(text: &str) -> Result<Tree, TreeError> {
        if text.len() > MAX_TREE_LEN {
            return Err(TreeError(format!("longer than {MAX_TREE_LEN} bytes")));
        }
        let mut parser = Parser {
            text: text.as_bytes(),
            at: 0,
        };
        let tree = parser.keys(0)?;
        if parser.at != parser.text.len() {
            return Err(TreeError(format!(
                "unexpected '{}' at {}",
                parser.text[parser.at] as char, parser.at
            )));
        }
        Ok(tree)
    }

    /// Whether `name` is asked for at the top level (for what is only sent on request).
    pub fn wants(&self, name: &str) -> bool {
        self.keys.iter().any(|k| k.name == name)
    }

    /// What the expression keeps under top-level `key`: `None` when it drops the key,
    /// else the sub-tree to apply to its value (`None`: all of it) and the range of its
    /// elements. For answers that are streamed element by element.
    pub fn part(&self, key: &str) -> Option<Part<'_>> {
        self.keys.iter().find(|k| k.name == key).map(|k| Part {
            children: k.children.as_ref(),
            range: k.range,
        })
    }

    /// Keeps only what the expression names.
    pub fn apply(&self, value: Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(self.apply_object(map)),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.apply(v)).collect()),
            other => other,
        }
    }

    fn apply_object(&self, mut map: Map<String, Value>) -> Map<String, Value> {
        let mut kept = Map::new();
        if let Some(class) = map.remove("_class") {
            kept.insert("_class".into(), class);
        }
        for key in &self.keys {
            let Some(mut value) = map.remove(&key.name) else {
                continue;
            };
            if let (Some((from, to)), Value::Array(items)) = (key.range, &mut value) {
                let to = to.unwrap_or(items.len()).min(items.len());
                let from = from.min(to);
                *items = items.drain(from..to).collect();
            }
            if let Some(children) = &key.children {
                value = children.apply(value);
            }
            kept.insert(key.name.clone(), value);
        }
        kept
    }
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn keys(&mut self, depth: usize) -> Result<Tree, TreeError> {
        if depth > MAX_TREE_DEPTH {
            return Err(TreeError(format!(
                "nested deeper than {MAX_TREE_DEPTH} levels"
            )));
        }
        let mut keys = Vec::new();
        loop {
            let start = self.at;
            while self
                .peek()
                .is_some_and(|b| !matches!(b, b',' | b'[' | b']' | b'{' | b'}'))
            {
                self.at += 1;
            }
            let name = String::from_utf8_lossy(&self.text[start..self.at])
                .trim()
                .to_owned();
            if name.is_empty() {
                return Err(TreeError(format!("a key is missing at {start}")));
            }
            let mut key = Key {
                name,
                children: None,
                range: None,
            };
            if self.peek() == Some(b'[') {
                self.at += 1;
                key.children = Some(self.keys(depth + 1)?);
                self.expect(b']')?;
            }
            if self.peek() == Some(b'{') {
                self.at += 1;
                key.range = Some(self.range()?);
            }
            keys.push(key);
            match self.peek() {
                Some(b',') => self.at += 1,
                _ => return Ok(Tree { keys }),
            }
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), TreeError> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(TreeError(format!(
                "'{}' expected at {}",
                byte as char, self.at
            )))
        }
    }

    /// `M,N}`, `M,}`, `,N}` or `N}` (the element N alone), after the `{`.
    fn range(&mut self) -> Result<(usize, Option<usize>), TreeError> {
        let start = self.at;
        while self.peek().is_some_and(|b| b != b'}') {
            self.at += 1;
        }
        let body = String::from_utf8_lossy(&self.text[start..self.at]).into_owned();
        self.expect(b'}')?;
        let number = |s: &str| -> Result<Option<usize>, TreeError> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            s.parse()
                .map(Some)
                .map_err(|_| TreeError(format!("bad range {{{body}}}")))
        };
        match body.split_once(',') {
            Some((from, to)) => Ok((number(from)?.unwrap_or(0), number(to)?)),
            None => {
                let n = number(&body)?.ok_or_else(|| TreeError("empty range {}".into()))?;
                Ok((n, Some(n.saturating_add(1))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_the_named_keys_recursively_and_always_the_class() {
        let tree = Tree::parse("jobs[name,color],url").unwrap();
        let value = json!({
            "_class": "hudson.model.Hudson",
            "url": "http://x/",
            "views": [],
            "jobs": [
                {"_class": "p", "name": "a", "color": "blue", "url": "u"},
                {"name": "b", "color": "red"},
            ],
        });
        assert_eq!(
            tree.apply(value),
            json!({
                "_class": "hudson.model.Hudson",
                "url": "http://x/",
                "jobs": [{"_class": "p", "name": "a", "color": "blue"}, {"name": "b", "color": "red"}],
            })
        );
        assert!(tree.wants("jobs") && !tree.wants("name"));
    }

    #[test]
    fn ranges_cut_arrays() {
        let value = json!({"builds": [{"number": 5}, {"number": 4}, {"number": 3}]});
        let cut = |tree: &str| Tree::parse(tree).unwrap().apply(value.clone());
        assert_eq!(
            cut("builds[number]{0,2}"),
            json!({"builds": [{"number": 5}, {"number": 4}]})
        );
        assert_eq!(
            cut("builds{1,}"),
            json!({"builds": [{"number": 4}, {"number": 3}]})
        );
        assert_eq!(cut("builds{,1}"), json!({"builds": [{"number": 5}]}));
        assert_eq!(cut("builds{2}"), json!({"builds": [{"number": 3}]}));
        assert_eq!(cut("builds{7,99}"), json!({"builds": []}));
        let tree = Tree::parse("builds[number]{1,2},url").unwrap();
        let part = tree.part("builds").unwrap();
        assert_eq!(
            (part.keeps(0), part.keeps(1), part.keeps(2)),
            (false, true, false)
        );
        assert_eq!(
            part.apply(json!({"number": 1, "url": "u"})),
            json!({"number": 1})
        );
        assert!(
            tree.part("url")
                .is_some_and(|p| p.children.is_none() && p.keeps(9))
        );
        assert!(tree.part("name").is_none());
    }

    #[test]
    fn python_jenkins_all_jobs_query_parses() {
        let mut query = "jobs".to_owned();
        for _ in 0..10 {
            query = format!("jobs[url,color,name,{query}]");
        }
        let tree = Tree::parse(&query).unwrap();
        let value =
            json!({"jobs": [{"name": "a", "url": "u", "color": "blue", "buildable": true}]});
        assert_eq!(
            tree.apply(value),
            json!({"jobs": [{"name": "a", "url": "u", "color": "blue"}]})
        );
    }

    #[test]
    fn malformed_expressions_are_refused_not_panicked_on() {
        for bad in [
            "", ",", "a,", "a[", "a[b", "a]", "a{", "a{x}", "a{}", "a[]", "a{1,2", "a}b",
        ] {
            assert!(Tree::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Tree::parse(&"a[".repeat(100)).is_err());
        assert!(Tree::parse(&"a,".repeat(MAX_TREE_LEN)).is_err());
        assert!(Tree::parse("a{99999999999999999999999}").is_err());
    }

    proptest::proptest! {
        /// Whatever a client sends as `tree`, parsing answers and filtering never panics.
        #[test]
        fn any_expression_parses_or_is_refused(text in "[a-z,\\[\\]{}0-9 ]{0,40}|\\PC{0,40}") {
            if let Ok(tree) = Tree::parse(&text) {
                let value = json!({"a": [{"b": 1}, {"c": [1, 2, 3]}], "b": {"a": null}, "_class": "x"});
                let _ = tree.apply(value);
                let _ = tree.part("a").map(|p| p.keeps(usize::MAX));
            }
        }
    }
}
