//! JSON written straight into a byte buffer, byte for byte as `serde_json` writes the same
//! values (the planned executor's output must equal the generic executor's).

/// Writes `s` as a JSON string. Most upstream strings need no escaping, so they are copied
/// after one scan; the others go through `serde_json`'s escaper.
pub(crate) fn string(s: &str, out: &mut Vec<u8>) {
    if !needs_escaping(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        value(&s, out);
    }
}

/// Whether any byte of `bytes` is one JSON escapes: a control character, `"` or `\\`.
/// Eight bytes at a time (the classic SWAR tests for a byte below n and for a zero byte,
/// exact as to whether any byte matches), since this runs over every string of an answer.
fn needs_escaping(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    #[inline(always)]
    fn word_needs_escaping(x: u64) -> bool {
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let below_space = x.wrapping_sub(ONES * 0x20) & !x;
        let zero_quote = quote.wrapping_sub(ONES) & !quote;
        let zero_backslash = backslash.wrapping_sub(ONES) & !backslash;
        (below_space | zero_quote | zero_backslash) & HIGH != 0
    }
    let mut rest = bytes;
    while let Some((chunk, tail)) = rest.split_first_chunk::<8>() {
        if word_needs_escaping(u64::from_le_bytes(*chunk)) {
            return true;
        }
        rest = tail;
    }
    // The last bytes, padded with a byte that needs no escaping.
    let mut last = [b'a'; 8];
    last[..rest.len()].copy_from_slice(rest);
    word_needs_escaping(u64::from_le_bytes(last))
}

/// Writes any serializable value as `serde_json` does.
pub(crate) fn value<T: serde::Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    // Writing into a `Vec` cannot fail, and the values written here (strings, numbers and
    // async-graphql's `Value`) always serialize; `null` keeps the output JSON if one did not.
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    fn ours(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        super::string(s, &mut out);
        out
    }

    #[test]
    fn escapes_what_serde_json_escapes() {
        for s in [
            "",
            "plain",
            "quote \" here",
            "back\\slash",
            "\n\r\t\u{8}\u{c}",
            "\u{1}\u{1f}",
            "ünï €",
            "\u{7f}",
        ] {
            assert_eq!(ours(s), serde_json::to_vec(s).expect("serializes"), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(s in any::<String>()) {
            prop_assert_eq!(ours(&s), serde_json::to_vec(&s).expect("serializes"));
        }
    }
}
