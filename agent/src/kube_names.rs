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

/// `text` as DNS-1123 subdomain characters: lower case, `[a-z0-9-.]`
/// (anything else becomes `-`), without leading or trailing `-`/`.`.
fn clean(text: &str) -> String {
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
    clean.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// A DNS-1123 subdomain of at most `max` characters made from `text`:
/// lower case, `[a-z0-9-.]`, with a hash of the full text appended when it
/// had to be cut (so distinct long names stay distinct).
pub fn object_name(text: &str, max: usize) -> String {
    let clean = clean(text);
    if clean.len() <= max && !clean.is_empty() {
        return clean;
    }
    with_suffix(&clean, &short_hash(text), max)
}

/// `head` cut so that `head-suffix` fits in `max` characters.
fn with_suffix(head: &str, suffix: &str, max: usize) -> String {
    let keep = max.saturating_sub(suffix.len() + 1);
    let head = head[..head.len().min(keep)].trim_end_matches(['-', '.']);
    if head.is_empty() {
        suffix.to_string()
    } else {
        format!("{head}-{suffix}")
    }
}

/// The largest object name (a DNS-1123 subdomain).
pub const MAX_NAME: usize = 253;

/// A name no other input can have: the readable `parts` joined by `-`
/// (cut to fit [`MAX_NAME`]), then `hash_chars` hex digits of the SHA-256
/// of `kind` and the exact parts (each with its length, so `a-b` + `c` and
/// `a` + `b-c` differ). `kind` keeps names of different object kinds
/// apart even when their parts are equal.
pub fn injective_name(kind: &str, parts: &[&str], hash_chars: usize) -> String {
    let mut input = Vec::new();
    for part in std::iter::once(&kind).chain(parts) {
        input.extend_from_slice(&(part.len() as u64).to_le_bytes());
        input.extend_from_slice(part.as_bytes());
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let hash = &hex[..hash_chars.clamp(8, hex.len())];
    with_suffix(&clean(&parts.join("-")), hash, MAX_NAME)
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

/// Name of a workload's BehaviorProfile: `<kind>-<name>` (a kind has no
/// `-`, so the name is injective within a namespace), cut to fit.
pub fn profile_name(workload: &imprint_crd::report::WorkloadRef) -> String {
    object_name(
        &format!("{}-{}", workload.kind.to_ascii_lowercase(), workload.name),
        253,
    )
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

    #[test]
    fn injective_names_differ_where_joined_parts_are_equal() {
        let a = injective_name("seccomp", &["a-b", "c"], 16);
        let b = injective_name("seccomp", &["a", "b-c"], 16);
        assert_ne!(a, b);
        assert!(
            a.starts_with("a-b-c-") && a.len() == "a-b-c-".len() + 16,
            "{a}"
        );
        assert_ne!(
            injective_name("report", &["x", "y"], 8),
            injective_name("archive", &["x", "y"], 8),
            "the kind is part of the hash"
        );
        assert_eq!(
            a,
            injective_name("seccomp", &["a-b", "c"], 16),
            "deterministic"
        );
        let long = injective_name("seccomp", &[&"n".repeat(300), "c"], 16);
        assert!(long.len() <= MAX_NAME && long.starts_with("nnn"), "{long}");
        let odd = injective_name("report", &["--", "_"], 8);
        assert_eq!(odd.len(), 8, "nothing readable: the hash alone ({odd})");
    }
}
