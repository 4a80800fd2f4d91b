//! Kubernetes object names and label values made from arbitrary text: the
//! one place that turns pod, container and workload names into valid,
//! bounded, deterministic names.

/// FNV-1a, 64 bit: a stable short hash for name suffixes.
pub fn short_hash(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", hash as u32 ^ (hash >> 32) as u32)
}

/// A DNS-1123 subdomain of at most `max` characters made from `text`:
/// lower case, `[a-z0-9-.]`, with a hash of the full text appended when it
/// had to be cut (so distinct long names stay distinct).
pub fn object_name(text: &str, max: usize) -> String {
    let clean: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_matches(|c| c == '-' || c == '.').to_string();
    if clean.len() <= max && !clean.is_empty() {
        return clean;
    }
    let hash = short_hash(text);
    let keep = max.saturating_sub(hash.len() + 1);
    let head = clean[..clean.len().min(keep)].trim_end_matches(['-', '.']);
    if head.is_empty() {
        hash
    } else {
        format!("{head}-{hash}")
    }
}

/// A label value (at most 63 characters, alphanumeric at both ends).
pub fn label_value(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = clean.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.len() <= 63 && trimmed.len() == clean.len() {
        return trimmed.to_string();
    }
    let hash = short_hash(text);
    let head = &trimmed[..trimmed.len().min(63 - hash.len() - 1)];
    let head = head.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if head.is_empty() {
        hash
    } else {
        format!("{head}-{hash}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_valid_and_bounded() {
        assert_eq!(object_name("--A_b--", 253), "a-b");
        let empty = object_name("___", 253);
        assert!(!empty.is_empty() && empty.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(object_name(&"x".repeat(300), 253).len() <= 253);
    }
}
