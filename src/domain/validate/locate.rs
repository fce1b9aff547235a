//! Finds where in a RON workflow file a problem belongs.
//!
//! `ron` reports positions only for syntax and shape errors. Problems found after parsing are
//! placed by anchors: a field name (found outside comments and strings), or a step (found by
//! its `id:`) and a piece of text inside it.

/// Where in the file a problem belongs.
#[derive(Clone)]
pub enum Anchor {
    /// A top-level or trigger field, found by its name; at `needle` if it occurs after it.
    Field(&'static str, Option<String>),
    /// Inside step `index`, at `needle` if it occurs there, else at the step's `id`.
    Step(usize, Option<String>),
    /// Inside alert rule `index`, at `needle` if it occurs there, else at the rule's `name`.
    Alert(usize, Option<String>),
}

impl Anchor {
    /// The same place, pointing at `needle`.
    pub fn near(&self, needle: &str) -> Self {
        match self {
            Self::Field(name, _) => Self::Field(name, Some(needle.to_owned())),
            Self::Step(index, _) => Self::Step(*index, Some(needle.to_owned())),
            Self::Alert(index, _) => Self::Alert(*index, Some(needle.to_owned())),
        }
    }

    pub fn step(&self) -> Option<usize> {
        match self {
            Self::Step(index, _) => Some(*index),
            Self::Field(..) | Self::Alert(..) => None,
        }
    }
}

/// The field names and step positions of one source text.
pub struct Locator<'s> {
    source: &'s str,
    fields: Vec<(&'s str, usize)>,
    step_starts: Vec<usize>,
    alert_starts: Vec<usize>,
}

impl<'s> Locator<'s> {
    pub fn new(source: &'s str) -> Self {
        let fields = field_names(source);
        let steps_at = fields
            .iter()
            .find(|(name, _)| *name == "steps")
            .map_or(source.len(), |f| f.1);
        let alerts_at = fields
            .iter()
            .find(|(name, _)| *name == "alerts")
            .map_or(source.len(), |f| f.1);
        let starts = |key: &str, after: usize, before: usize| -> Vec<usize> {
            fields
                .iter()
                .filter(|(name, at)| *name == key && *at > after && *at < before)
                .map(|f| f.1)
                .collect()
        };
        let step_starts = starts(
            "id",
            steps_at,
            if alerts_at > steps_at {
                alerts_at
            } else {
                source.len()
            },
        );
        let alert_starts = starts(
            "name",
            alerts_at,
            if steps_at > alerts_at {
                steps_at
            } else {
                source.len()
            },
        );
        Self {
            source,
            fields,
            step_starts,
            alert_starts,
        }
    }

    /// The 1-based line and column an anchor points at.
    pub fn position(&self, anchor: &Anchor) -> (usize, usize) {
        let offset = match anchor {
            Anchor::Field(name, needle) => {
                let start = self
                    .fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(0, |f| f.1);
                self.find_in(start, self.source.len(), needle.as_deref())
            }
            Anchor::Step(index, needle) => {
                self.within(&self.step_starts, *index, needle.as_deref())
            }
            Anchor::Alert(index, needle) => {
                self.within(&self.alert_starts, *index, needle.as_deref())
            }
        };
        line_col(self.source, offset)
    }

    /// The offset of `needle` inside item `index` of `starts` (a step or a rule), else the
    /// item's start.
    fn within(&self, starts: &[usize], index: usize, needle: Option<&str>) -> usize {
        let start = starts.get(index).copied().unwrap_or(0);
        let end = starts.get(index + 1).copied().unwrap_or(self.source.len());
        self.find_in(start, end, needle)
    }

    /// The offset of `needle` within `start..end`, else `start`.
    fn find_in(&self, start: usize, end: usize, needle: Option<&str>) -> usize {
        needle
            .and_then(|n| self.source[start..end].find(n).map(|at| start + at))
            .unwrap_or(start)
    }

    /// The ids of steps `index` and after, as written.
    pub fn step_ids_from(&self, index: usize) -> impl Iterator<Item = &'s str> + '_ {
        let source = self.source;
        self.step_starts[index.min(self.step_starts.len())..]
            .iter()
            .filter_map(move |&at| {
                let rest = &source[at..];
                let open = rest.find('"')? + 1;
                let close = rest[open..].find('"')?;
                Some(&rest[open..open + close])
            })
    }
}

/// Every field name in RON source (`name:` outside comments and strings), with its offset.
fn field_names(source: &str) -> Vec<(&str, usize)> {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = source[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = source[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + n + 4);
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if source[i..].trim_start_matches([' ', '\t']).starts_with(':') {
                    found.push((&source[start..i], start));
                }
            }
            _ => i += 1,
        }
    }
    found
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    (line, col)
}
