//! Topics (`assistant.captured`) and topic patterns (`assistant.*`, `assistant.>`).
//!
//! A topic is one or more non-empty tokens separated by `.`; a token holds ASCII
//! letters, digits, `_` and `-`. A pattern may also use `*` for exactly one token and,
//! as its last token, `>` for one or more tokens, as in NATS subjects.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest topic or pattern accepted, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;

/// Why a topic or pattern was refused. Positions are byte offsets into the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The text is empty.
    #[error("is empty; give at least one token, such as `orders` or `orders.created`")]
    Empty,
    /// The text is longer than [`MAX_TOPIC_LEN`].
    #[error("is {len} bytes long; the limit is {max}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Two dots in a row, or a dot at either end.
    #[error("has an empty token at byte {at}; tokens are separated by single dots")]
    EmptyToken {
        /// Where the empty token starts.
        at: usize,
    },
    /// A character outside `[A-Za-z0-9_-]`.
    #[error("has {ch:?} at byte {at}; tokens may hold ASCII letters, digits, `_` and `-`")]
    InvalidChar {
        /// The character (bytes above ASCII are shown as U+FFFD).
        ch: char,
        /// Where it is.
        at: usize,
    },
    /// `*` or `>` in a topic that events are published on.
    #[error("has a wildcard at byte {at}; wildcards belong in subscription patterns, not topics")]
    Wildcard {
        /// Where it is.
        at: usize,
    },
    /// `>` somewhere other than as the whole last token, or `*` inside a token.
    #[error(
        "has a misplaced wildcard at byte {at}; `*` must be a whole token and `>` the whole last token"
    )]
    MisplacedWildcard {
        /// Where it is.
        at: usize,
    },
}

/// Checks `text` as a topic (`patterns == false`) or a pattern (`patterns == true`).
const fn check(text: &str, patterns: bool) -> Result<(), TopicError> {
    let bytes = text.as_bytes();
    let len = bytes.len();
    if len == 0 {
        return Err(TopicError::Empty);
    }
    if len > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong {
            len,
            max: MAX_TOPIC_LEN,
        });
    }
    let mut token_start = 0;
    let mut i = 0;
    while i <= len {
        if i == len || bytes[i] == b'.' {
            let token_len = i - token_start;
            if token_len == 0 {
                return Err(TopicError::EmptyToken { at: token_start });
            }
            let first = bytes[token_start];
            if first == b'*' || first == b'>' {
                if !patterns {
                    return Err(TopicError::Wildcard { at: token_start });
                }
                if token_len != 1 || (first == b'>' && i != len) {
                    return Err(TopicError::MisplacedWildcard { at: token_start });
                }
            }
            token_start = i + 1;
        } else {
            let b = bytes[i];
            let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
            if !plain {
                if b == b'*' || b == b'>' {
                    if !patterns {
                        return Err(TopicError::Wildcard { at: i });
                    }
                    if i != token_start {
                        return Err(TopicError::MisplacedWildcard { at: i });
                    }
                } else {
                    let ch = if b.is_ascii() { b as char } else { '\u{fffd}' };
                    return Err(TopicError::InvalidChar { ch, at: i });
                }
            }
        }
        i += 1;
    }
    Ok(())
}

#[derive(Clone)]
enum Text {
    Static(&'static str),
    Shared(Arc<str>),
}

/// A validated topic that events are published on, such as `assistant.captured`.
///
/// Cloning is cheap: a topic is either a `&'static str` or a shared `Arc<str>`.
#[derive(Clone)]
pub struct Topic(Text);

impl Topic {
    /// A topic from a string literal, checked at compile time when used in a `const`.
    ///
    /// # Panics
    /// If `text` is not a valid topic. In a `const` item (as in [`crate::Event::TOPIC`])
    /// that is a compile error; for text from outside the program use [`Topic::new`].
    pub const fn from_static(text: &'static str) -> Topic {
        match check(text, false) {
            Ok(()) => Topic(Text::Static(text)),
            Err(_) => panic!("invalid topic literal"),
        }
    }

    /// Validates `text` as a topic.
    pub fn new(text: impl AsRef<str>) -> Result<Topic, TopicError> {
        let text = text.as_ref();
        check(text, false)?;
        Ok(Topic(Text::Shared(Arc::from(text))))
    }

    /// The topic as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Text::Static(s) => s,
            Text::Shared(s) => s,
        }
    }

    /// The dot-separated tokens.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.as_str().split('.')
    }
}

impl PartialEq for Topic {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Topic {}
impl Hash for Topic {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}
impl Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}
impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}
impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic({:?})", self.as_str())
    }
}
impl std::str::FromStr for Topic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Topic::new(s)
    }
}
impl Serialize for Topic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}
impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Topic::new(&text).map_err(|e| serde::de::Error::custom(format!("topic {text:?} {e}")))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(Box<str>),
    One,
    Rest,
}

/// A compiled subscription pattern: `orders.created`, `orders.*`, `orders.>`.
#[derive(Clone, PartialEq, Eq)]
pub struct TopicPattern {
    text: Arc<str>,
    /// `None` when the pattern has no wildcard and matches one topic exactly.
    tokens: Option<Box<[Token]>>,
}

impl TopicPattern {
    /// Validates and compiles `text` as a pattern.
    pub fn new(text: impl AsRef<str>) -> Result<TopicPattern, TopicError> {
        let text = text.as_ref();
        check(text, true)?;
        let wild = text.split('.').any(|t| t == "*" || t == ">");
        let tokens = wild.then(|| {
            text.split('.')
                .map(|t| match t {
                    "*" => Token::One,
                    ">" => Token::Rest,
                    literal => Token::Literal(literal.into()),
                })
                .collect()
        });
        Ok(TopicPattern {
            text: Arc::from(text),
            tokens,
        })
    }

    /// The pattern that matches exactly `topic`.
    pub fn exact(topic: &Topic) -> TopicPattern {
        TopicPattern {
            text: Arc::from(topic.as_str()),
            tokens: None,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern has no wildcard.
    pub fn is_exact(&self) -> bool {
        self.tokens.is_none()
    }

    /// Whether `topic` matches this pattern.
    pub fn matches(&self, topic: &Topic) -> bool {
        self.matches_str(topic.as_str())
    }

    /// Whether the (already valid) topic text matches this pattern.
    pub fn matches_str(&self, topic: &str) -> bool {
        let Some(tokens) = &self.tokens else {
            return *self.text == *topic;
        };
        let mut parts = topic.split('.');
        for token in tokens.iter() {
            match token {
                Token::Rest => return parts.next().is_some(),
                Token::One => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Token::Literal(literal) => {
                    if parts.next() != Some(&**literal) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
impl fmt::Debug for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicPattern({:?})", &*self.text)
    }
}
impl std::str::FromStr for TopicPattern {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicPattern::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(s: &str) -> Topic {
        Topic::new(s).unwrap()
    }

    #[test]
    fn star_matches_exactly_one_token() {
        let p = TopicPattern::new("a.*").unwrap();
        assert!(p.matches(&topic("a.b")));
        assert!(!p.matches(&topic("a")));
        assert!(!p.matches(&topic("a.b.c")));
        assert!(!p.matches(&topic("b.a")));
        let mid = TopicPattern::new("a.*.c").unwrap();
        assert!(mid.matches(&topic("a.x.c")));
        assert!(!mid.matches(&topic("a.x.d")));
    }

    #[test]
    fn rest_matches_one_or_more_tokens() {
        let p = TopicPattern::new("a.>").unwrap();
        assert!(p.matches(&topic("a.b")));
        assert!(p.matches(&topic("a.b.c.d")));
        assert!(!p.matches(&topic("a")));
        assert!(!p.matches(&topic("ab.c")));
        assert!(TopicPattern::new(">").unwrap().matches(&topic("x.y")));
    }

    #[test]
    fn exact_pattern_matches_only_itself() {
        let p = TopicPattern::new("a.b").unwrap();
        assert!(p.is_exact());
        assert!(p.matches(&topic("a.b")));
        assert!(!p.matches(&topic("a.bc")));
        assert!(!p.matches(&topic("a.b.c")));
    }

    #[test]
    fn malformed_text_gets_a_typed_error() {
        assert_eq!(TopicPattern::new(""), Err(TopicError::Empty));
        assert_eq!(Topic::new("a..b"), Err(TopicError::EmptyToken { at: 2 }));
        assert_eq!(Topic::new(".a"), Err(TopicError::EmptyToken { at: 0 }));
        assert_eq!(Topic::new("a."), Err(TopicError::EmptyToken { at: 2 }));
        assert_eq!(Topic::new("a.*"), Err(TopicError::Wildcard { at: 2 }));
        assert_eq!(
            TopicPattern::new("a.>.b"),
            Err(TopicError::MisplacedWildcard { at: 2 })
        );
        assert_eq!(
            TopicPattern::new("a.b*"),
            Err(TopicError::MisplacedWildcard { at: 3 })
        );
        assert_eq!(
            Topic::new("a b"),
            Err(TopicError::InvalidChar { ch: ' ', at: 1 })
        );
        let long = "a".repeat(MAX_TOPIC_LEN + 1);
        assert!(matches!(Topic::new(long), Err(TopicError::TooLong { .. })));
    }

    #[test]
    fn static_and_shared_topics_compare_equal() {
        const T: Topic = Topic::from_static("a.b");
        assert_eq!(T, topic("a.b"));
        let json = serde_json::to_string(&T).unwrap();
        assert_eq!(serde_json::from_str::<Topic>(&json).unwrap(), T);
        assert!(serde_json::from_str::<Topic>("\"a..b\"").is_err());
    }
}
