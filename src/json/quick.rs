//! A quick scan that accepts only values serde_json certainly accepts
//! (by the rules of [`super::check`]); anything it is not sure of (number
//! exponents, long numbers, `\u` escapes, deep nesting, damage) it leaves to
//! serde_json.
//! About three times faster than serde_json on typical records, which is
//! what keeps checking every value of a log cheap on open. The fuzz
//! target `replay` and the tests below check that it never accepts what
//! serde_json refuses.

use super::MAX_DEPTH;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Bit 7 set in each byte of `x` a string scan must stop at: below 0x20,
/// `"`, `\`, or 0x80 and above. Exact for those bytes (a borrow into a
/// byte only comes from a byte below it that is itself flagged).
fn special(x: u64) -> u64 {
    let control = x.wrapping_sub(ONES * 0x20) & !x;
    let quote = {
        let y = x ^ (ONES * u64::from(b'"'));
        y.wrapping_sub(ONES) & !y
    };
    let backslash = {
        let y = x ^ (ONES * u64::from(b'\\'));
        y.wrapping_sub(ONES) & !y
    };
    (control | quote | backslash | x) & HIGH
}

/// A cursor over a value's bytes.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    /// The last string scanned held an escape.
    escaped: bool,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.i += 1;
            return true;
        }
        false
    }

    fn word(&mut self, word: &[u8]) -> bool {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            return true;
        }
        false
    }

    /// A string whose escapes are all one of `\" \\ \/ \b \f \n \r \t`
    /// and whose other bytes are valid UTF-8 without control characters.
    fn string(&mut self) -> bool {
        if !self.eat(b'"') {
            return false;
        }
        self.escaped = false;
        loop {
            while let Some(chunk) = self.b.get(self.i..self.i + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let flagged = special(u64::from_le_bytes(word));
                if flagged != 0 {
                    self.i += (flagged.trailing_zeros() / 8) as usize;
                    break;
                }
                self.i += 8;
            }
            match self.peek() {
                None | Some(0..=0x1f) => return false,
                Some(b'"') => {
                    self.i += 1;
                    return true;
                }
                Some(b'\\') => match self.b.get(self.i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                        self.i += 2;
                        self.escaped = true;
                    }
                    _ => return false,
                },
                Some(0x80..) => {
                    // Valid UTF-8 up to the next quote or escape.
                    let start = self.i;
                    while let Some(c) = self.peek() {
                        match c {
                            b'"' | b'\\' => break,
                            0..=0x1f => return false,
                            _ => self.i += 1,
                        }
                    }
                    let part = self.b.get(start..self.i).unwrap_or_default();
                    if std::str::from_utf8(part).is_err() {
                        return false;
                    }
                }
                Some(_) => self.i += 1,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    /// A number without an exponent that a `Value` certainly keeps exactly:
    /// an integer of at most 18 digits (an `i64`), or a decimal of at most
    /// 15 digits in all (an `f64` gives back any 15 significant digits).
    fn number(&mut self) -> bool {
        let negative = self.eat(b'-');
        let zero = self.eat(b'0');
        let int_digits = if zero { 1 } else { self.digits() };
        if int_digits == 0 || int_digits > 18 {
            return false;
        }
        if self.eat(b'.') {
            let frac_digits = self.digits();
            if frac_digits == 0 || int_digits + frac_digits > 15 {
                return false;
            }
        } else if negative && zero {
            // `-0` reads back as the float -0.0: [`super::exact`] refuses it.
            return false;
        }
        !matches!(self.peek(), Some(b'e' | b'E' | b'0'..=b'9'))
    }

    /// `"key"` `:` (with whitespace around), noted in `keys` unless the
    /// object already has it (then false: serde_json's check names it).
    fn key(&mut self, keys: &mut Keys, depth: u32) -> bool {
        self.ws();
        let start = self.i;
        if !self.string() || u32::try_from(self.i).is_err() {
            return false;
        }
        if self.escaped || !keys.note(depth, self.b, start + 1, self.i - 1) {
            return false;
        }
        self.ws();
        if !self.eat(b':') {
            return false;
        }
        self.ws();
        true
    }
}

/// The keys of the objects open in a scan, to find a member given twice.
/// Holds at most [`Keys::MAX`] keys in all; more, or a key with an escape
/// (`"a\/b"` is `"a/b"`), and the scan is not certain.
struct Keys {
    /// Where each key's bytes are in the text (between its quotes).
    spans: [(u32, u32); Keys::MAX],
    len: usize,
    /// For each open object, by depth, where its keys start in `spans`.
    starts: [u8; MAX_DEPTH as usize + 1],
}

impl Keys {
    const MAX: usize = 64;

    fn new() -> Self {
        Keys {
            spans: [(0, 0); Keys::MAX],
            len: 0,
            starts: [0; MAX_DEPTH as usize + 1],
        }
    }

    /// An object opens at `depth`.
    fn open(&mut self, depth: u32) {
        if let Some(start) = self.starts.get_mut(depth as usize) {
            *start = self.len as u8;
        }
    }

    /// The object at `depth` closes: its keys are forgotten.
    fn close(&mut self, depth: u32) {
        self.len = self
            .starts
            .get(depth as usize)
            .map_or(0, |&s| usize::from(s));
    }

    /// Notes the key `text[from..to]` (which holds no escape) of the
    /// object open at `depth`; false if that object has it already, or the
    /// scan cannot be sure.
    fn note(&mut self, depth: u32, text: &[u8], from: usize, to: usize) -> bool {
        let Some(key) = text.get(from..to) else {
            return false;
        };
        if self.len >= Keys::MAX {
            return false;
        }
        let start = self
            .starts
            .get(depth as usize)
            .map_or(0, |&s| usize::from(s));
        let earlier = self.spans.get(start..self.len).unwrap_or_default();
        if earlier
            .iter()
            .any(|&(a, b)| text.get(a as usize..b as usize) == Some(key))
        {
            return false;
        }
        self.spans[self.len] = (from as u32, to as u32);
        self.len += 1;
        true
    }
}

/// Whether `text` is certainly one valid JSON value by serde_json's rules
/// (false: not certain; [`super::check_with_serde`] decides).
pub(crate) fn certainly_valid(text: &[u8]) -> bool {
    let mut s = Scan {
        b: text,
        i: 0,
        escaped: false,
    };
    let mut keys = Keys::new();
    let mut depth = 0u32;
    // Bit n set: the container at depth n is an object.
    let mut objects: u128 = 0;
    s.ws();
    loop {
        // A value.
        match s.peek() {
            Some(open @ (b'{' | b'[')) => {
                if depth >= MAX_DEPTH {
                    return false;
                }
                s.i += 1;
                let object = open == b'{';
                if object {
                    objects |= 1 << depth;
                } else {
                    objects &= !(1 << depth);
                }
                depth += 1;
                if object {
                    keys.open(depth);
                }
                s.ws();
                if s.eat(if object { b'}' } else { b']' }) {
                    depth -= 1;
                } else {
                    if object && !s.key(&mut keys, depth) {
                        return false;
                    }
                    continue;
                }
            }
            Some(b'"') => {
                if !s.string() {
                    return false;
                }
            }
            Some(b't') if s.word(b"true") => {}
            Some(b'f') if s.word(b"false") => {}
            Some(b'n') if s.word(b"null") => {}
            Some(b'-' | b'0'..=b'9') => {
                if !s.number() {
                    return false;
                }
            }
            _ => return false,
        }
        // What follows a value: closing brackets, then a comma or the end.
        loop {
            s.ws();
            if depth == 0 {
                return s.i == text.len();
            }
            let object = objects & (1 << (depth - 1)) != 0;
            if s.eat(b',') {
                if object && !s.key(&mut keys, depth) {
                    return false;
                }
                s.ws();
                break;
            }
            if !s.eat(if object { b'}' } else { b']' }) {
                return false;
            }
            if object {
                keys.close(depth);
            }
            depth -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agree(text: &[u8]) {
        if certainly_valid(text) {
            assert!(
                super::super::check_with_serde(text).is_ok(),
                "quick scan accepted what serde_json refuses: {:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn typical_values_pass_the_quick_scan() {
        for good in [
            &br#"{"_aborted":false,"_done":true,"_tries":1,"url":"https://example.com/a"}"#[..],
            b"[1,-2,3.5,0,-0.25,\"x\\n\\\"\",null,true,false,{}]",
            "\"caf\u{e9} \u{1F600}\"".as_bytes(),
            b" { \"a\" : [ ] , \"b\" : { } } ",
            b"{\"a\":{\"a\":1,\"b\":2},\"b\":{\"a\":1},\"c\":[{\"a\":1},{\"a\":2}]}",
            b"-0.0",
            // Escapes in values leave the keys after them certain.
            br#"{"a":"\n","b":{"c":"\t"},"d":1}"#,
        ] {
            assert!(certainly_valid(good), "{}", String::from_utf8_lossy(good));
            agree(good);
        }
    }

    #[test]
    fn what_serde_json_refuses_is_never_certain() {
        for bad in [
            &b""[..],
            b"1,\"evil\":2",
            b"01",
            b"1.",
            b".5",
            b"-",
            b"[1,]",
            b"{\"a\":1,}",
            b"{\"a\"}",
            b"{1:2}",
            b"\"a\x01\"",
            b"\"\xff\"",
            b"\"\xc3\"",
            b"truex",
            b"[1 2]",
            b"{\"a\":1 \"b\":2}",
            b"]",
            b"[}",
            b"\"abc",
            b"\"\\x\"",
            // serde_json reads these, but a store refuses them.
            b"-0",
            b"{\"a\":1,\"a\":2}",
            b"{\"a\":{\"b\":1,\"b\":1}}",
            b"[{\"a\":1},{\"b\":{\"c\":1},\"b\":2}]",
            // The same key, once escaped.
            br#"{"a\/b":1,"a/b":2}"#,
        ] {
            assert!(!certainly_valid(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_special_byte_mask_is_exact() {
        for byte in 0..=255u8 {
            let expected = byte < 0x20 || byte == b'"' || byte == b'\\' || byte >= 0x80;
            for pos in 0..8 {
                let mut word = [b'a'; 8];
                word[pos] = byte;
                let flagged = special(u64::from_le_bytes(word));
                let first = (flagged != 0).then(|| flagged.trailing_zeros() / 8);
                assert_eq!(first, expected.then_some(pos as u32), "{byte:#x} at {pos}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn never_accepts_what_serde_json_refuses(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("{".to_string()), Just("}".to_string()), Just("[".to_string()),
                    Just("]".to_string()), Just(",".to_string()), Just(":".to_string()),
                    Just("\"k\"".to_string()), Just("\"\\u00e9\"".to_string()),
                    Just("\"\\n\"".to_string()), Just("true".to_string()), Just("null".to_string()),
                    Just(" ".to_string()), Just("-".to_string()), Just("0".to_string()),
                    Just("12".to_string()), Just(".5".to_string()), Just("e3".to_string()),
                    Just("\"\u{e9}\"".to_string()), Just("\u{1}".to_string()),
                    "[\\x00-\\x7f]{0,3}",
                ],
                0..24,
            )
        ) {
            agree(parts.concat().as_bytes());
        }

        #[test]
        fn never_accepts_what_serde_json_refuses_in_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            agree(&bytes);
        }
    }
}
