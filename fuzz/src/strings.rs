//! String strategies shared by the targets: arbitrary text, and small edits
//! of valid input that reach a parser's edge cases.

use proptest::prelude::*;
use proptest::sample::Index;

/// Generates any string: arbitrary Unicode, printable ASCII, ASCII with control
/// characters and NUL, or a long run of one character.
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => any::<String>(),
        4 => "[ -~]{0,24}",
        2 => "[\\x00-\\x7f]{0,24}",
        1 => run_of_one_char(4096),
    ]
    .boxed()
}

/// Generates a run of up to `max_len` copies of one character.
pub fn run_of_one_char(max_len: usize) -> impl Strategy<Value = String> {
    (any::<char>(), 0..=max_len).prop_map(|(c, len)| c.to_string().repeat(len))
}

/// Generates mostly `valid` strings, the others with one edit: a character
/// inserted, removed or replaced, or a piece of [`text`] appended.
pub fn near(valid: impl Strategy<Value = String> + 'static) -> BoxedStrategy<String> {
    let valid = valid.boxed();
    let edited = (valid.clone(), any::<Index>(), edit_char(), text(), 0..4u8)
        .prop_map(|(base, at, c, tail, kind)| edit(&base, at, c, &tail, kind));
    prop_oneof![2 => valid, 3 => edited].boxed()
}

/// Generates characters that parsers treat specially, and now and then any
/// character.
fn edit_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec![
            '\0', ' ', ':', '=', '/', '.', '-', '+', '_', '[', ']', 'e', 'i', 'é', '\u{202e}',
        ]),
        1 => any::<char>(),
    ]
}

fn edit(base: &str, at: Index, c: char, tail: &str, kind: u8) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    let position = at.index(chars.len() + 1);
    match kind {
        0 => chars.insert(position, c),
        1 if position < chars.len() => {
            chars.remove(position);
        }
        2 if position < chars.len() => chars[position] = c,
        _ => chars.extend(tail.chars()),
    }
    chars.into_iter().collect()
}
