//! Where the figures go: readable lines as they are measured (stdout, or stderr with
//! `--json`), and with `--json` one JSON object on stdout at the end.

use std::io::Write;

use serde_json::{Map, Value};

pub struct Report {
    json: Option<Map<String, Value>>,
}

impl Report {
    pub fn new(json: bool) -> Self {
        Report {
            json: json.then(Map::new),
        }
    }

    /// Prints one readable line now.
    pub fn line(&self, text: impl AsRef<str>) {
        let text = text.as_ref();
        if self.json.is_some() {
            let _ = writeln!(std::io::stderr(), "{text}");
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }

    /// Records a figure for the JSON output.
    pub fn value(&mut self, key: &str, value: Value) {
        if let Some(map) = &mut self.json {
            map.insert(key.to_owned(), value);
        }
    }

    /// Prints the JSON object, if asked for.
    pub fn finish(&mut self) {
        if let Some(map) = self.json.take() {
            println!("{}", Value::Object(map));
        }
    }
}

/// GB/s as the targets count them: bytes / seconds / 1e9.
pub fn gbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e9
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// Median and range of a few figures.
pub fn median_range(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    (median, v[0], v[v.len() - 1])
}
