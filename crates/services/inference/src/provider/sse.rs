//! A server-sent events parser (the WHATWG format: `event:` and `data:` lines, an
//! empty line ends an event, `:` starts a comment) over bytes as they arrive, with
//! a bound on how large one event may grow; and the same for newline-delimited
//! JSON (Ollama's streams), where each non-empty line is an event's data.

use crate::error::ProviderError;

/// One event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// Its `event:` name (`None`: the default, `message`).
    pub event: Option<String>,
    /// Its `data:` lines, joined with `\n`.
    pub data: String,
}

/// Parses events out of bytes fed in any split.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    current: Event,
    has_data: bool,
    size: usize,
    max: usize,
    /// Newline-delimited: every non-empty line is one event.
    lines: bool,
}

impl SseParser {
    /// A parser refusing an event (or a line) over `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            line: Vec::new(),
            current: Event::default(),
            has_data: false,
            size: 0,
            max,
            lines: false,
        }
    }

    /// A parser of newline-delimited JSON: each non-empty line is an event.
    pub fn lines(max: usize) -> Self {
        Self {
            lines: true,
            ..Self::new(max)
        }
    }

    /// The events `bytes` completes.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Event>, ProviderError> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.line_done(&line, &mut out)?;
            } else {
                self.line.push(b);
                if self.line.len() > self.max {
                    return Err(ProviderError::Malformed(format!(
                        "stream event over {} bytes",
                        self.max
                    )));
                }
            }
        }
        Ok(out)
    }

    /// What is left when the stream ends (an event without its final empty line).
    pub fn finish(&mut self) -> Option<Event> {
        let line = std::mem::take(&mut self.line);
        let mut out = Vec::new();
        if !line.is_empty() {
            let _ = self.line_done(&line, &mut out);
        }
        if self.has_data {
            out.push(self.take());
        }
        out.pop()
    }

    fn take(&mut self) -> Event {
        self.has_data = false;
        self.size = 0;
        std::mem::take(&mut self.current)
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), ProviderError> {
        if self.lines {
            if !line.iter().all(u8::is_ascii_whitespace) {
                out.push(Event {
                    event: None,
                    data: String::from_utf8_lossy(line).into_owned(),
                });
            }
            return Ok(());
        }
        if line.is_empty() {
            if self.has_data {
                out.push(self.take());
            } else {
                self.current = Event::default();
            }
            return Ok(());
        }
        if line.first() == Some(&b':') {
            return Ok(());
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.current.event = Some(value.to_owned()),
            "data" => {
                self.size += value.len() + 1;
                if self.size > self.max {
                    return Err(ProviderError::Malformed(format!(
                        "stream event over {} bytes",
                        self.max
                    )));
                }
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn events_split_anywhere_are_whole_and_bounded() {
        let text =
            b"event: ping\ndata: {\"a\":1}\r\n\r\n: comment\ndata: x\ndata: y\n\ndata: [DONE]\n\n";
        for split in 1..text.len() {
            let mut p = SseParser::new(1024);
            let mut got = p.feed(&text[..split]).unwrap();
            got.extend(p.feed(&text[split..]).unwrap());
            assert_eq!(got.len(), 3, "split at {split}");
            assert_eq!(got[0].event.as_deref(), Some("ping"));
            assert_eq!(got[0].data, "{\"a\":1}");
            assert_eq!(got[1].data, "x\ny");
            assert_eq!(got[2].data, "[DONE]");
        }
        let mut p = SseParser::new(8);
        assert!(p.feed(b"data: 0123456789\n").is_err());
        let mut p = SseParser::new(64);
        assert!(p.feed(b"data: tail").unwrap().is_empty());
        assert_eq!(p.finish().unwrap().data, "tail");
        let mut p = SseParser::lines(64);
        let got = p.feed(b"{\"a\":1}\n\n{\"b\"").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, "{\"a\":1}");
        assert_eq!(p.feed(b":2}\n").unwrap()[0].data, "{\"b\":2}");
        assert!(p.feed(b"{\"c\"").unwrap().is_empty());
        assert_eq!(p.finish().unwrap().data, "{\"c\"");
    }
}
