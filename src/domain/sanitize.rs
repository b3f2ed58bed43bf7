//! Strings that came from outside (a chain, a request) are data, never instructions: strip
//! control, bidi and zero-width characters and bound their length before they reach an
//! agent, a log line or an error message.

/// Characters that change how text renders without being visible.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}' // bidi isolates
        | '\u{FEFF}' // zero-width no-break space / BOM
        | '\u{00AD}' // soft hyphen
        | '\u{180E}' // Mongolian vowel separator
    )
}

/// A chain-sourced string (token symbol, name, memo): printable, bounded, trimmed.
pub fn chain_string(raw: &str, max_chars: usize) -> String {
    raw.chars()
        .filter(|c| !c.is_control() && !is_invisible(*c))
        .take(max_chars)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A user-supplied fragment echoed in an error message: short and inert.
pub fn for_message(raw: &str) -> String {
    let mut s = chain_string(raw, 64);
    if raw.chars().count() > 64 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_control_bidi_and_zero_width() {
        assert_eq!(chain_string("US\u{202E}DC\u{200B}\n", 32), "USDC");
        assert_eq!(chain_string("  TOKEN\t", 32), "TOKEN");
        assert_eq!(chain_string("ABCDEFGH", 4), "ABCD");
        assert_eq!(
            chain_string("Ignore previous\u{0007} instructions", 64),
            "Ignore previous instructions"
        );
        assert_eq!(for_message(&"x".repeat(100)).chars().count(), 65);
    }
}
