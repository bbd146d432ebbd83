//! Shell-style globs for rule names and resource scopes: `*` matches any run of characters, `?`
//! one character; everything else is literal. A pattern without wildcards is an exact match.

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<char>,
    source: String,
}

impl Glob {
    /// Compiles `pattern`. Every string is a valid glob.
    pub fn new(pattern: &str) -> Glob {
        Glob { pattern: pattern.chars().collect(), source: pattern.to_string() }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern has wildcards (otherwise it is an exact match).
    pub fn is_exact(&self) -> bool {
        !self.pattern.iter().any(|c| *c == '*' || *c == '?')
    }

    /// Whether `text` matches the whole pattern. Backtracks only to the last `*` (O(pattern × text)
    /// at worst), so a hostile alert field cannot make matching exponential. A `*` in the pattern
    /// is always a wildcard, even facing a `*` in the text (attackers choose process names).
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let p = &self.pattern;
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < text.len() {
            if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ti));
                pi += 1;
            } else if pi < p.len() && (p[pi] == '?' || p[pi] == text[ti]) {
                pi += 1;
                ti += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Obviously-correct exponential reference.
    fn reference(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
            (Some('?'), Some(_)) => reference(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => reference(&p[1..], &t[1..]),
            _ => false,
        }
    }

    #[test]
    fn examples() {
        assert!(Glob::new("Drop and execute*").matches("Drop and execute new binary in container"));
        assert!(Glob::new("*crypto*").matches("Detect crypto miners using the Stratum protocol"));
        assert!(!Glob::new("Terminal shell").matches("Terminal shell in container"));
        assert!(Glob::new("Terminal shell in container").matches("Terminal shell in container"));
        assert!(Glob::new("gke-?rod*").matches("gke-prod-eu"));
        assert!(Glob::new("*").matches(""));
        assert!(!Glob::new("?").matches(""));
        // Found in review: a literal `*` in the text must not swallow the pattern's wildcard.
        assert!(Glob::new("*xmrig*").matches("*a-xmrig"));
        assert!(Glob::new("a*").matches("a*b"));
    }

    proptest! {
        #[test]
        fn agrees_with_reference(p in "[ab*?]{0,8}", t in "[ab*?]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            prop_assert_eq!(Glob::new(&p).matches(&t), reference(&pc, &tc));
        }

        #[test]
        fn literal_pattern_matches_itself_only(s in "[^*?]{0,20}", other in "\\PC{0,20}") {
            let g = Glob::new(&s);
            prop_assert!(g.is_exact());
            prop_assert!(g.matches(&s));
            prop_assert_eq!(g.matches(&other), other == s);
        }
    }
}
