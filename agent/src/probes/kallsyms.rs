//! Kernel text ranges of the functions that check capabilities without
//! audit, read from `/proc/kallsyms`. The capability probe compares its
//! kernel stack with these ranges to tell a no-audit probe (the kernel asks
//! whether a capability is there, and works either way) from a real need.

use imprint_probes::events::NOAUDIT_RANGES;

/// Functions whose capability checks are no-audit probes. The overcommit
/// check (`cap_vm_enough_memory`, a CAP_SYS_ADMIN probe on every mmap) is
/// often inlined into `security_vm_enough_memory_mm`, whose other LSM hooks
/// also check without audit.
const NOAUDIT_FUNCTIONS: [&str; 5] = [
    "ns_capable_noaudit",
    "has_capability_noaudit",
    "has_ns_capability_noaudit",
    "cap_vm_enough_memory",
    "security_vm_enough_memory_mm",
];

/// Start and end addresses of the no-audit callers found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoauditRanges {
    /// Start addresses.
    pub start: [u64; NOAUDIT_RANGES],
    /// End addresses (exclusive).
    pub end: [u64; NOAUDIT_RANGES],
    /// Valid entries.
    pub count: u32,
}

/// Reads the ranges from the running kernel; `None` when addresses are
/// hidden (kptr_restrict) or the file is unreadable.
pub fn noaudit_ranges() -> Option<NoauditRanges> {
    let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
    parse(&text)
}

/// Finds the ranges in kallsyms text. A function (or its `.cold` part) ends
/// where the next text symbol starts.
pub fn parse(text: &str) -> Option<NoauditRanges> {
    let mut text_symbols: Vec<(u64, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let addr = u64::from_str_radix(fields.next()?, 16).ok()?;
            let kind = fields.next()?;
            let name = fields.next()?;
            matches!(kind, "t" | "T").then_some((addr, name))
        })
        .collect();
    if text_symbols.iter().all(|(addr, _)| *addr == 0) {
        return None;
    }
    text_symbols.sort_unstable_by_key(|(addr, _)| *addr);
    let mut ranges = NoauditRanges::default();
    for (i, (addr, name)) in text_symbols.iter().enumerate() {
        let base = name.split('.').next().unwrap_or(name);
        if !NOAUDIT_FUNCTIONS.contains(&base) || ranges.count as usize >= NOAUDIT_RANGES {
            continue;
        }
        let end = text_symbols[i + 1..]
            .iter()
            .map(|(a, _)| *a)
            .find(|a| a > addr)
            .unwrap_or(addr + 4096);
        let slot = ranges.count as usize;
        ranges.start[slot] = *addr;
        ranges.end[slot] = end;
        ranges.count += 1;
    }
    (ranges.count > 0).then_some(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_noaudit_callers_and_their_cold_parts() {
        let text = "ffffffff81000000 T _stext\n\
                    ffffffff8120790e t ns_capable_noaudit.cold\n\
                    ffffffff81207a00 t other_cold\n\
                    ffffffff81368280 T ns_capable_noaudit\n\
                    ffffffff813682c0 T ns_capable_setid\n\
                    ffffffff81a82c90 T cap_vm_enough_memory\n\
                    ffffffff81a82d00 T cap_mmap_addr\n\
                    ffffffff81a82e00 d some_data\n";
        let r = parse(text).unwrap();
        assert_eq!(r.count, 3);
        assert_eq!(
            (r.start[0], r.end[0]),
            (0xffffffff8120790e, 0xffffffff81207a00)
        );
        assert_eq!(
            (r.start[1], r.end[1]),
            (0xffffffff81368280, 0xffffffff813682c0)
        );
        assert_eq!(
            (r.start[2], r.end[2]),
            (0xffffffff81a82c90, 0xffffffff81a82d00)
        );
    }

    #[test]
    fn hidden_addresses_give_nothing() {
        let text = "0000000000000000 T ns_capable_noaudit\n0000000000000000 T x\n";
        assert_eq!(parse(text), None);
    }
}
