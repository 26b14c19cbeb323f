//! The command language's reader on any text (`plexus_dsl::parse`, with the default
//! limits and with small ones), then the printer and the diagnostics.
//!
//! Checked: nothing panics and nothing recurses past the depth limit; a refusal is
//! one diagnostic whose span lies inside the text, on character boundaries, and
//! renders (ariadne) with its line and column; a program read is printed, read
//! again to the same program, and printed again to the same text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_dsl::{Diagnostics, Limits, Lines, parse, print};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let small = Limits {
        max_bytes: 256,
        max_depth: 4,
    };
    for limits in [Limits::default(), small] {
        match parse(source, limits) {
            Ok(program) => {
                let text = print(&program);
                let again = parse(&text, Limits::default())
                    .unwrap_or_else(|d| panic!("the printed program does not read: {d:?}\n{text}"));
                assert!(program.same(&again), "printed differently:\n{text}");
                assert_eq!(print(&again), text);
            }
            Err(d) => {
                assert!(
                    d.span.start <= d.span.end && d.span.end <= source.len(),
                    "{d:?}"
                );
                assert!(
                    source.is_char_boundary(d.span.start) && source.is_char_boundary(d.span.end)
                );
                let (line, column) = Lines::new(source).position(source, d.span.start);
                let diags = Diagnostics::new("fuzz", source, vec![d]);
                let json = diags.to_json();
                assert_eq!(json[0]["line"], line);
                assert_eq!(json[0]["column"], column);
                assert!(!diags.render().is_empty());
            }
        }
    }
});
