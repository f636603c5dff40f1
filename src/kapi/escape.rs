//! Kazoo's routing-key word escaping (`kz_amqp_util:encode/1`, WIRE.md §2.6).

/// Escapes one routing-key word the way Kazoo does, byte by byte.
///
/// A whole `*` or `#` (and the empty word) pass untouched so callers can build
/// wildcard bindings with the same function they use for call ids.
pub fn encode(word: &str) -> String {
    if word.is_empty() || word == "*" || word == "#" {
        return word.to_owned();
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(word.len() + word.len() / 2);
    for &b in word.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'~' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0x0f) as usize] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn kazoo_test_vectors() {
        assert_eq!(encode("routing.key"), "routing%2Ekey");
        assert_eq!(
            encode("test&.192. 168. 5. 5#"),
            "test%26%2E192%2E+168%2E+5%2E+5%23"
        );
        assert_eq!(
            encode("a1b2c3d4-e5f60718-29a3b4c5@10.26.0.91"),
            "a1b2c3d4-e5f60718-29a3b4c5%4010%2E26%2E0%2E91"
        );
        assert_eq!(
            encode("user_zu0bf7:account.realm.com"),
            "user_zu0bf7%3Aaccount%2Erealm%2Ecom"
        );
    }

    #[test]
    fn wildcards_survive_only_whole() {
        assert_eq!(encode("*"), "*");
        assert_eq!(encode("#"), "#");
        assert_eq!(encode(""), "");
        assert_eq!(encode("a*"), "a%2A");
        assert_eq!(encode("%+/~"), "%25%2B%2F~");
    }

    #[test]
    fn utf8_is_escaped_bytewise() {
        assert_eq!(encode("é"), "%C3%A9");
    }
}
